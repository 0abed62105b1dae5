//! Race and bounds nets around emulated launches: run one launch under every [`Schedule`] from
//! the same initial buffer contents, check every buffer's guards after each run, and compare the
//! results. Between two sync points the emulator runs each thread without interruption, in the
//! schedule's order; a kernel without races produces the same bits under all of them.

use super::buffer::{Element, GuardedBuf};
use super::{Schedule, Stats};
use crate::error::{Error, Result};

/// How the results of two schedules must agree in one buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Compare {
    /// Bit for bit.
    Exact,
    /// As f32 values within `abs + rel * |x|`: for buffers accumulated with float atomics, whose
    /// order (and hence rounding) legitimately follows the schedule, as on a GPU.
    F32Within { abs: f32, rel: f32 },
}

/// A buffer a schedule check restores before each run, guards, and compares.
pub struct Watch<'a> {
    name: &'static str,
    bytes: &'a dyn BytesView,
    elem_size: usize,
    compare: Compare,
}

/// Watches `buf` under `name` (used in error messages). Results must agree bit for bit.
pub fn watch<'a, T: Element>(name: &'static str, buf: &'a GuardedBuf<T>) -> Watch<'a> {
    Watch {
        name,
        bytes: buf,
        elem_size: std::mem::size_of::<T>(),
        compare: Compare::Exact,
    }
}

impl Watch<'_> {
    /// Lets an f32 buffer written by float atomics differ between schedules by `abs + rel*|x|`.
    pub fn atomic_f32(mut self, abs: f32, rel: f32) -> Self {
        assert_eq!(
            self.elem_size, 4,
            "atomic_f32 on a buffer of non-4-byte elements"
        );
        self.compare = Compare::F32Within { abs, rel };
        self
    }
}

/// Type-erased access to a guarded buffer.
trait BytesView {
    fn bytes(&self) -> &[u8];
    fn set_bytes(&self, bytes: &[u8]);
    fn check_guards(&self, name: &str) -> std::result::Result<(), String>;
}

impl<T: Element> BytesView for GuardedBuf<T> {
    fn bytes(&self) -> &[u8] {
        GuardedBuf::bytes(self)
    }
    fn set_bytes(&self, bytes: &[u8]) {
        GuardedBuf::set_bytes(self, bytes)
    }
    fn check_guards(&self, name: &str) -> std::result::Result<(), String> {
        GuardedBuf::check_guards(self, name)
    }
}

fn hex(bytes: &[u8]) -> String {
    // Little-endian element as one number.
    let mut s = String::from("0x");
    for b in bytes.iter().rev() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

fn first_difference(w: &Watch<'_>, a: &[u8], b: &[u8]) -> Option<(usize, String, String)> {
    let n = a.len() / w.elem_size;
    for i in 0..n {
        let ea = &a[i * w.elem_size..(i + 1) * w.elem_size];
        let eb = &b[i * w.elem_size..(i + 1) * w.elem_size];
        if ea == eb {
            continue;
        }
        let differs = match w.compare {
            Compare::Exact => true,
            Compare::F32Within { abs, rel } => {
                let x = f32::from_le_bytes(ea.try_into().expect("4 bytes"));
                let y = f32::from_le_bytes(eb.try_into().expect("4 bytes"));
                let within = (x - y).abs() <= abs + rel * x.abs().max(y.abs());
                // NaN on one side only is a difference; NaN on both sides differs in bits only.
                let both_nan = x.is_nan() && y.is_nan();
                !(within || both_nan)
            }
        };
        if differs {
            return Some((i, hex(ea), hex(eb)));
        }
    }
    None
}

/// Runs `launch` once per schedule of [`Schedule::all`]`(seed)`. Before each run every watched
/// buffer is restored to the contents it had when this was called; after each run every guard is
/// checked (an out-of-bounds write is an error naming the buffer and offset), and the results of
/// each schedule are compared with the first one's: a difference is reported as a race with the
/// buffer, the element index and both values. On success the buffers hold the (common) result.
///
/// `kernel` names the kernel in the errors; `launch` typically calls [`super::launch`] with the
/// schedule it is given and pointers of the watched buffers captured in its params.
pub fn check_schedules<F>(
    kernel: &'static str,
    seed: u64,
    buffers: &[Watch<'_>],
    mut launch: F,
) -> Result<Vec<Stats>>
where
    F: FnMut(Schedule) -> Result<Stats>,
{
    let initial: Vec<Vec<u8>> = buffers.iter().map(|w| w.bytes.bytes().to_vec()).collect();
    let schedules = Schedule::all(seed);
    let mut first: Option<Vec<Vec<u8>>> = None;
    let mut stats = Vec::with_capacity(schedules.len());
    for schedule in schedules {
        for (w, init) in buffers.iter().zip(&initial) {
            w.bytes.set_bytes(init);
        }
        stats.push(launch(schedule)?);
        for w in buffers {
            w.bytes
                .check_guards(w.name)
                .map_err(|detail| Error::Emulator {
                    kernel,
                    detail: format!("out-of-bounds write under schedule {schedule}: {detail}"),
                })?;
        }
        let results: Vec<Vec<u8>> = buffers.iter().map(|w| w.bytes.bytes().to_vec()).collect();
        match &first {
            None => first = Some(results),
            Some(reference) => {
                for ((w, a), b) in buffers.iter().zip(reference).zip(&results) {
                    if let Some((index, va, vb)) = first_difference(w, a, b) {
                        return Err(Error::Emulator {
                            kernel,
                            detail: format!(
                                "race: buffer `{}` differs between schedules {} and {schedule} \
                                 at element {index}: {va} vs {vb}",
                                w.name, schedules[0]
                            ),
                        });
                    }
                }
            }
        }
    }
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn exact_comparison_finds_the_first_differing_element() {
        let buf = GuardedBuf::<f32>::filled(4, 0.0);
        let w = watch("x", &buf);
        let a = bytes(&[1.0, 2.0, 3.0, 4.0]);
        let b = bytes(&[1.0, 2.0, f32::from_bits(3f32.to_bits() + 1), 5.0]);
        let (i, va, vb) = first_difference(&w, &a, &b).unwrap();
        assert_eq!(i, 2);
        assert_eq!(va, "0x40400000");
        assert_eq!(vb, "0x40400001");
        assert!(first_difference(&w, &a, &a).is_none());
    }

    #[test]
    fn atomic_comparison_allows_rounding_differences_only() {
        let buf = GuardedBuf::<f32>::filled(3, 0.0);
        let w = watch("x", &buf).atomic_f32(0.0, 1e-6);
        let a = bytes(&[1.0, 2.0, 3.0]);
        let close = bytes(&[1.0, 2.000_001, 3.0]);
        assert!(first_difference(&w, &a, &close).is_none());
        let far = bytes(&[1.0, 2.0, 3.01]);
        assert_eq!(first_difference(&w, &a, &far).unwrap().0, 2);
        let nan = bytes(&[f32::NAN, 2.0, 3.0]);
        assert_eq!(first_difference(&w, &a, &nan).unwrap().0, 0);
    }
}
