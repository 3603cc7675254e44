//! Through the C ABI, `splitsound_rt_process` (including its refusals),
//! `splitsound_rt_reset` and `splitsound_rt_get_stats` allocate nothing after
//! `splitsound_rt_prepare`: this test binary counts every allocation the test
//! thread makes while armed.

use splitsound::*;

#[path = "../../core/tests/support/counting_alloc.rs"]
mod counting;
use counting::counted;

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
