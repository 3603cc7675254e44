//! Through the C ABI, `splitsound_rt_process` (including its refusals),
//! `splitsound_rt_reset` and `splitsound_rt_get_stats` allocate nothing after
//! `splitsound_rt_prepare`: this test binary counts every allocation the test
//! thread makes while armed.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use splitsound::*;

struct Counting;

thread_local! {
    static ARMED: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<u64> = const { Cell::new(0) };
}

fn note() {
    let _ = ARMED.try_with(|a| {
        if a.get() {
            let _ = COUNT.try_with(|c| c.set(c.get() + 1));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note();
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn counted(f: impl FnOnce()) -> u64 {
    COUNT.with(|c| c.set(0));
    ARMED.with(|a| a.set(true));
    f();
    ARMED.with(|a| a.set(false));
    COUNT.with(|c| c.get())
}

#[test]
fn the_real_time_calls_allocate_nothing_after_prepare() {
    let (rate, max) = (44_100u32, 512usize);
    let n = rate as usize * 3;
    let input: Vec<Vec<f32>> =
        (0..2).map(|c| (0..n).map(|i| ((i * (7 + c)) % 101) as f32 / 101.0 - 0.5).collect()).collect();
    for name in [c"builtin:hpss", c"builtin:center"] {
        let mut rt = std::ptr::null_mut();
        // SAFETY: a valid string and out-parameter.
        assert_eq!(unsafe { splitsound_rt_new(name.as_ptr(), std::ptr::null(), &mut rt) }, splitsound_status::Ok);
        // SAFETY: a live handle.
        assert_eq!(unsafe { splitsound_rt_prepare(rt, rate, max, 2) }, splitsound_status::Ok);
        let mut outs = vec![vec![0.0f32; max]; 4];
        let out_ptrs: Vec<*mut f32> = outs.iter_mut().map(|o| o.as_mut_ptr()).collect();
        let mut stats = splitsound_rt_stats::default();
        let allocations = counted(|| {
            let sizes = [max, 1, 64, 300, 17];
            let (mut pos, mut k) = (0, 0);
            while pos < n {
                let len = sizes[k % sizes.len()].min(n - pos);
                let ins = [input[0][pos..].as_ptr(), input[1][pos..].as_ptr()];
                // SAFETY: two inputs and four outputs of at least `len` floats.
                let s = unsafe { splitsound_rt_process(rt, ins.as_ptr(), 2, out_ptrs.as_ptr(), 4, len) };
                assert_eq!(s, splitsound_status::Ok);
                pos += len;
                k += 1;
            }
            let ins = [input[0].as_ptr(), input[1].as_ptr()];
            // SAFETY: as above; each call is refused before touching the buffers.
            unsafe {
                assert_eq!(
                    splitsound_rt_process(rt, ins.as_ptr(), 2, out_ptrs.as_ptr(), 4, max + 1),
                    splitsound_status::BlockTooLarge
                );
                assert_eq!(
                    splitsound_rt_process(rt, ins.as_ptr(), 1, out_ptrs.as_ptr(), 4, 8),
                    splitsound_status::ChannelMismatch
                );
                assert_eq!(
                    splitsound_rt_process(rt, std::ptr::null(), 2, out_ptrs.as_ptr(), 4, 8),
                    splitsound_status::NullArgument
                );
                assert_eq!(splitsound_rt_reset(rt), splitsound_status::Ok);
                assert_eq!(splitsound_rt_get_stats(rt, &mut stats), splitsound_status::Ok);
            }
        });
        assert_eq!(allocations, 0, "{name:?}: {allocations} allocations in the real-time calls");
        // SAFETY: a live handle, freed once.
        unsafe { splitsound_rt_free(rt) };
    }
}

#[test]
fn a_refused_block_leaves_no_message_and_a_failed_call_one() {
    let mut sep = std::ptr::null_mut();
    // SAFETY: valid strings and out-parameters.
    unsafe {
        assert_eq!(
            splitsound_separator_new(c"builtin:nope".as_ptr(), std::ptr::null(), &mut sep),
            splitsound_status::UnknownSeparator
        );
        assert!(sep.is_null(), "out-parameters are written only on success");
        let mut needed = 0;
        assert_eq!(splitsound_last_error(std::ptr::null_mut(), 0, &mut needed), splitsound_status::BufferTooSmall);
        let before = needed;
        assert_eq!(
            splitsound_rt_process(std::ptr::null_mut(), std::ptr::null(), 0, std::ptr::null(), 0, 0),
            splitsound_status::NullArgument
        );
        assert_eq!(splitsound_last_error(std::ptr::null_mut(), 0, &mut needed), splitsound_status::BufferTooSmall);
        assert_eq!(needed, before, "splitsound_rt_process must not record a message");
    }
}
