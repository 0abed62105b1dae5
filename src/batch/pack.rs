//! First-fit-decreasing packing of units (samples, or unshared sequences) into rows of a fixed
//! capacity. Deterministic: longest first, ties by input order, each into the first row with room.

/// Rows of unit indices; every unit has `lens[u] <= capacity`. Units keep ascending index order
/// within a row, so a row reads in input order.
pub(crate) fn first_fit_decreasing(lens: &[usize], capacity: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lens.len()).collect();
    order.sort_by_key(|&u| (std::cmp::Reverse(lens[u]), u));
    let mut rows: Vec<(usize, Vec<usize>)> = Vec::new();
    for u in order {
        match rows.iter_mut().find(|(used, _)| used + lens[u] <= capacity) {
            Some((used, members)) => {
                *used += lens[u];
                members.push(u);
            }
            None => rows.push((lens[u], vec![u])),
        }
    }
    rows.into_iter()
        .map(|(_, mut members)| {
            members.sort_unstable();
            members
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_longest_first_into_the_first_row_with_room() {
        // 7 opens row 0, 6 opens row 1, 5 opens row 2, 3 fits row 0 (10), 2 fits row 1 (8),
        // 2 fits row 1 (10), 1 fits row 2.
        let rows = first_fit_decreasing(&[3, 7, 2, 6, 5, 2, 1], 10);
        assert_eq!(rows, vec![vec![0, 1], vec![2, 3, 5], vec![4, 6]]);
    }
}
