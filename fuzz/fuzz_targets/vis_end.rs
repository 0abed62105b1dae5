//! `VisEnd::new` / `VisEnd::from_rows` against the rule: accepted iff every row is valid
//! (`j <= vis_end[j] <= n`), else the documented typed error naming the first offending row and
//! index; an accepted batch gives back its rows, and `visible` and `visible_pairs` agree with
//! the rule by enumeration.
#![no_main]

use fuzz_oracle::input::Input;
use fuzz_oracle::note;
use fuzz_oracle::rule::{first_invalid, sees, visible_pairs};
use libfuzzer_sys::fuzz_target;
use prefix_attn::mask::{visible, VisEnd};
use prefix_attn::Error;

/// A value for `vis_end[j]` of a row of `n`: mostly valid, often on or past a bound.
fn value(inp: &mut Input, j: usize, n: usize) -> i32 {
    let n = n.min(i32::MAX as usize) as i64;
    let j = j as i64;
    let v = match inp.byte() {
        0..=169 => inp.int_i64(j.min(n), n),
        170..=209 => inp.pick(&[j - 1, j, n, n + 1]),
        210..=239 => inp.int_i64(-3, n + 3),
        _ => inp.pick(&[i64::from(i32::MIN), i64::from(i32::MAX), -1]),
    };
    v.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

fn row(inp: &mut Input, len: usize, n: usize) -> Vec<i32> {
    (0..len).map(|j| value(inp, j, n)).collect()
}

/// The accepted batch holds exactly the rows given, and its rule agrees with ours.
fn check_ok(v: &VisEnd, n: usize, data: &[i32]) {
    assert_eq!(v.n(), n);
    assert_eq!(v.rows(), data.len() / n);
    assert_eq!(v.as_slice(), data);
    let mut pairs = 0;
    for (r, want) in data.chunks(n).enumerate() {
        let got = v.row(r);
        assert_eq!(got, want);
        assert_eq!(
            first_invalid(got),
            None,
            "accepted an invalid row {r}: {got:?}"
        );
        for i in 0..n {
            for j in 0..n {
                assert_eq!(
                    visible(got, i, j),
                    sees(got, i, j),
                    "visible({i}, {j}) in {got:?}"
                );
            }
        }
        pairs += visible_pairs(got);
    }
    assert_eq!(v.visible_pairs(), pairs);
}

/// What `VisEnd::new(n, data)` must do.
fn check_new(n: usize, data: Vec<i32>) {
    let got = VisEnd::new(n, data.clone());
    note(match &got {
        Ok(_) => "new: accepted",
        Err(Error::VisEndOutOfRange { .. }) => "new: out of range",
        Err(_) => "new: other error",
    });
    if data.is_empty() {
        assert!(matches!(got, Err(Error::NoRows { .. })), "{got:?}");
        return;
    }
    if n == 0 {
        assert_eq!(got, Err(Error::EmptyRow { row: 0 }));
        return;
    }
    if n > i32::MAX as usize {
        assert!(
            matches!(got, Err(Error::IndexOverflow { value, .. }) if value == n as u128),
            "{got:?}"
        );
        return;
    }
    if !data.len().is_multiple_of(n) {
        assert!(
            matches!(got, Err(Error::LengthMismatch { expected, got: g, .. })
                if g == data.len() && expected == n * (data.len() / n).max(1)),
            "n {n} len {}: {got:?}",
            data.len()
        );
        return;
    }
    for (r, row) in data.chunks(n).enumerate() {
        if let Some(j) = first_invalid(row) {
            assert_eq!(
                got,
                Err(Error::VisEndOutOfRange {
                    row: r,
                    index: j,
                    value: i64::from(row[j]),
                    len: n
                }),
                "row {r}: {row:?}"
            );
            return;
        }
    }
    match got {
        Ok(v) => check_ok(&v, n, &data),
        Err(e) => panic!("valid rows refused: {e:?} ({data:?}, n {n})"),
    }
}

/// What `VisEnd::from_rows(rows)` must do: rows checked in order for emptiness and a common
/// length (the first row's), then as `new`.
fn check_from_rows(rows: Vec<Vec<i32>>) {
    let got = VisEnd::from_rows(&rows);
    let Some(first) = rows.first() else {
        assert!(matches!(got, Err(Error::NoRows { .. })), "{got:?}");
        return;
    };
    let n = first.len();
    for (r, row) in rows.iter().enumerate() {
        if row.is_empty() {
            assert_eq!(got, Err(Error::EmptyRow { row: r }));
            return;
        }
        if row.len() != n {
            assert!(
                matches!(got, Err(Error::LengthMismatch { expected, got: g, .. })
                    if expected == n && g == row.len()),
                "{got:?}"
            );
            return;
        }
    }
    let data: Vec<i32> = rows.concat();
    let again = VisEnd::new(n, data.clone());
    assert_eq!(got, again, "from_rows and new disagree");
    check_new(n, data);
}

fuzz_target!(|bytes: &[u8]| {
    let mut inp = Input::new(bytes);
    let from_rows = inp.chance(100);
    let n = match inp.byte() {
        0..=199 => inp.int(1, 40),
        200..=219 => 0,
        220..=239 => inp.int(41, 300),
        240..=249 => i32::MAX as usize + inp.int(0, 2),
        _ => usize::MAX - inp.int(0, 2),
    };
    let rows = inp.int(0, 4);
    if from_rows {
        let rows: Vec<Vec<i32>> = (0..rows)
            .map(|_| {
                let len = if n <= 300 && inp.chance(220) {
                    n
                } else {
                    inp.int(0, 42)
                };
                row(&mut inp, len, n.max(len))
            })
            .collect();
        check_from_rows(rows);
    } else {
        let len = if n <= 300 && inp.chance(220) {
            rows * n
        } else {
            inp.int(0, 50)
        };
        let rn = n.clamp(1, 300);
        let data: Vec<i32> = (0..len).map(|k| value(&mut inp, k % rn, n)).collect();
        check_new(n, data);
    }
});
