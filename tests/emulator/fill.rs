//! The fill kernel (csrc/kernels/fill.cuh) on the SIMT emulator: same launch preparation as on the
//! GPU (FillU32::dims), every element checked, under all three schedules, guards intact.

use prefix_attn::emu::{self, check_schedules, watch, GuardedBuf, Schedule};
use prefix_attn::ffi::params::PaFillParams;
use prefix_attn::launch::FillU32;

fn fill_params(buf: &GuardedBuf<u32>, value: u32) -> PaFillParams {
    PaFillParams {
        out: buf.as_mut_ptr(),
        count: buf.len() as i64,
        value,
        _pad0: 0,
    }
}

#[test]
fn fill_writes_every_element_under_every_schedule() {
    // Lengths around the block size and one that makes the kernel stride (capped grid below).
    for &count in &[1usize, 255, 256, 257, 1000, 5003] {
        let buf = GuardedBuf::<u32>::filled(count, 0x1234_5678);
        let value = 0xdead_beef ^ count as u32;
        let params = fill_params(&buf, value);
        let dims = FillU32::dims(count);
        let stats = check_schedules(
            FillU32::kernel().unwrap().name(),
            7,
            &[watch("out", &buf)],
            |s| unsafe { emu::launch(FillU32::kernel().unwrap(), &dims, &params, s) },
        )
        .unwrap();
        assert_eq!(stats[0].ctas, dims.grid[0] as u64);
        for (i, &x) in buf.as_slice().iter().enumerate() {
            assert_eq!(x, value, "count {count}: element {i}");
        }
    }
}

#[test]
fn fill_strides_when_the_grid_is_smaller_than_the_buffer() {
    let count = 3000;
    let buf = GuardedBuf::<u32>::filled(count, 0);
    let params = fill_params(&buf, 5);
    let mut dims = FillU32::dims(count);
    dims.grid = [2, 1, 1];
    dims.block = [64, 1, 1];
    unsafe {
        emu::launch(
            FillU32::kernel().unwrap(),
            &dims,
            &params,
            Schedule::Random { seed: 3 },
        )
    }
    .unwrap();
    assert!(buf.as_slice().iter().all(|&x| x == 5));
    buf.check_guards("out").unwrap();
}

#[test]
fn invalid_launches_are_errors_not_crashes() {
    let buf = GuardedBuf::<u32>::filled(16, 0);
    let params = fill_params(&buf, 1);
    let mut dims = FillU32::dims(16);
    dims.block = [2048, 1, 1];
    let e = unsafe {
        emu::launch(
            FillU32::kernel().unwrap(),
            &dims,
            &params,
            Schedule::Ascending,
        )
    }
    .unwrap_err();
    assert!(e.to_string().contains("1024"), "{e}");
    let mut dims = FillU32::dims(16);
    dims.grid = [0, 1, 1];
    assert!(unsafe {
        emu::launch(
            FillU32::kernel().unwrap(),
            &dims,
            &params,
            Schedule::Ascending,
        )
    }
    .is_err());
    let mut dims = FillU32::dims(16);
    dims.smem_bytes = 300_000;
    assert!(unsafe {
        emu::launch(
            FillU32::kernel().unwrap(),
            &dims,
            &params,
            Schedule::Ascending,
        )
    }
    .is_err());
}
