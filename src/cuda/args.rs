//! Device addresses of a launch's buffers, with cudarc's stream-ordering guards held until the
//! launch is enqueued: the guard of each buffer records the kernel's access on the stream when it
//! drops, so later work on other streams waits for it. A kernel with fifteen buffers (a backward)
//! takes them through one builder instead of fifteen hand-held guards.

use cudarc::driver::{CudaStream, DevicePtr, DevicePtrMut, SyncOnDrop};

use crate::error::{Error, Result};

/// Buffers one launch may take; a fixed array, so building a launch allocates nothing.
const CAPACITY: usize = 32;

/// Collects device addresses for a launch; keep it alive until the launch is enqueued.
pub struct DeviceArgs<'a> {
    stream: &'a CudaStream,
    guards: [Option<SyncOnDrop<'a>>; CAPACITY],
    len: usize,
}

impl<'a> DeviceArgs<'a> {
    /// Addresses for a launch on `stream`.
    pub fn new(stream: &'a CudaStream) -> Self {
        Self {
            stream,
            guards: std::array::from_fn(|_| None),
            len: 0,
        }
    }

    fn keep(&mut self, guard: SyncOnDrop<'a>) -> Result<()> {
        let slot = self
            .guards
            .get_mut(self.len)
            .ok_or_else(|| Error::InvalidArgument {
                what: "launch",
                detail: format!("more than {CAPACITY} buffers in one launch"),
            })?;
        *slot = Some(guard);
        self.len += 1;
        Ok(())
    }

    /// The address of a buffer the kernel reads.
    pub fn read<T, B: DevicePtr<T>>(&mut self, buf: &'a B) -> Result<u64> {
        let (ptr, guard) = buf.device_ptr(self.stream);
        self.keep(guard)?;
        Ok(ptr)
    }

    /// The address of a buffer the kernel writes.
    pub fn write<T, B: DevicePtrMut<T>>(&mut self, buf: &'a mut B) -> Result<u64> {
        let (ptr, guard) = buf.device_ptr_mut(self.stream);
        self.keep(guard)?;
        Ok(ptr)
    }
}
