//! The real-time block API for audio callbacks.

use std::ffi::c_char;

use splitsound_core::realtime::RealtimeSeparator;

use crate::handle::{free_handle, get, get_str, give, handle_mut};
use crate::separator::splitsound_options;
use crate::status::{Failure, guard, guard_rt, process_status, splitsound_status};
use crate::strings::{arg_str, need, nth, put};

/// A separator for audio callbacks. `hpss` and `center` run inside
/// `splitsound_rt_process`; a model package runs on a worker thread.
///
/// Thread safety: `splitsound_rt_process`, `splitsound_rt_reset` and
/// `splitsound_rt_get_stats` are real-time safe (no allocation, no lock, no
/// waiting) and are called from one thread (the audio thread); every other
/// function on the handle is called while no `process` runs (the host's
/// prepare-to-play and release). The handle may move between threads.
#[allow(non_camel_case_types)]
pub struct splitsound_rt {
    rt: RealtimeSeparator,
    /// Prepared input channels (0: not prepared).
    channels: usize,
    /// Prepared output buffers (stems × output channels).
    outputs: usize,
    max_block: usize,
    /// The input, copied before outputs are written, so they may alias.
    input_copy: Vec<Vec<f32>>,
    /// Per-call views, empty between calls; capacity reserved in prepare.
    ins: Vec<&'static [f32]>,
    outs: Vec<&'static mut [f32]>,
}

/// Counters of a real-time separator since it was prepared or reset.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct splitsound_rt_stats {
    /// `process` calls that output the underrun fallback for some frames.
    pub underruns: u64,
    /// Frames output as the fallback.
    pub underrun_frames: u64,
    /// Input frames dropped because the worker's input ring was full.
    pub dropped_input_frames: u64,
    /// NaN or infinite input samples (processed as zeros).
    pub non_finite_samples: u64,
    /// Frames the next `process` can return without the fallback (a bounce may wait for this).
    pub ready_frames: usize,
    /// Whether the worker stopped on an error; its stems are then the fallback.
    pub worker_failed: bool,
}

/// Opens a real-time separator: `"builtin:hpss"`, `"builtin:center"`, or the
/// path of an HT-Demucs or MDX-Net model package (Open-Unmix and
/// `builtin:repet` need the whole input: `SPLITSOUND_STATUS_UNSUPPORTED`).
/// `options` may be NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_rt_new(
    model: *const c_char,
    options: *const splitsound_options,
    out: *mut *mut splitsound_rt,
) -> splitsound_status {
    guard(|| {
        // SAFETY: a string or NULL; options NULL or live.
        let (spec, opts) = unsafe { (arg_str(model, "model")?, options.as_ref()) };
        need(out, "out")?;
        let o = opts.cloned().unwrap_or_default();
        let rt = RealtimeSeparator::load(spec, o.neural, o.rt)?;
        let handle = splitsound_rt {
            rt,
            channels: 0,
            outputs: 0,
            max_block: 0,
            input_copy: Vec::new(),
            ins: Vec::new(),
            outs: Vec::new(),
        };
        give(handle, out);
        Ok(())
    })
}

/// Frees a real-time separator (stopping its worker); NULL is a no-op.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_rt_free(p: *mut splitsound_rt) {
    // SAFETY: NULL or a handle from its `_new`, freed once.
    unsafe { free_handle(p) }
}

impl splitsound_rt {
    fn prepared(&self) -> Result<(), Failure> {
        if self.channels == 0 {
            return Err(Failure::new(splitsound_status::NotPrepared, "call splitsound_rt_prepare first"));
        }
        Ok(())
    }
}

/// Number of stems.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_rt_stem_count(rt: *const splitsound_rt, out: *mut usize) -> splitsound_status {
    // SAFETY: the caller's handle and out-parameter.
    unsafe { get(rt, "rt", out, |h| Ok(h.rt.stems().len())) }
}

/// Name of stem `index`, in the order of `process`'s outputs.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_rt_stem_name(
    rt: *const splitsound_rt,
    index: usize,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> splitsound_status {
    // SAFETY: the caller's handle and buffers.
    unsafe { get_str(rt, "rt", buf, len, out_n, |h| Ok(nth(h.rt.stems(), index, "stem")?.clone())) }
}

/// Where it computes (`"cpu"`, `"cuda:0"`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_rt_provider(
    rt: *const splitsound_rt,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> splitsound_status {
    // SAFETY: the caller's handle and buffers.
    unsafe { get_str(rt, "rt", buf, len, out_n, |h| Ok(h.rt.runs_on())) }
}

/// Allocates everything for blocks of up to `max_block` frames of `channels`
/// channels at `sample_rate` (a host's prepare-to-play). May be called again
/// to change them; the stream restarts.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_rt_prepare(
    rt: *mut splitsound_rt,
    sample_rate: u32,
    max_block: usize,
    channels: usize,
) -> splitsound_status {
    guard(|| {
        // SAFETY: a live, unshared handle or NULL.
        let h = unsafe { handle_mut(rt, "rt") }?;
        h.channels = 0;
        h.rt.prepare(sample_rate, max_block, channels)?;
        h.outputs = h.rt.stems().len() * h.rt.output_channels();
        h.max_block = max_block;
        h.input_copy = vec![vec![0.0; max_block]; channels];
        h.ins = Vec::with_capacity(channels);
        h.outs = Vec::with_capacity(h.outputs);
        h.channels = channels;
        Ok(())
    })
}

/// Output channels per stem (after prepare): the input's for the built-ins, 2 for a model.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_rt_output_channels(rt: *const splitsound_rt, out: *mut usize) -> splitsound_status {
    // SAFETY: the caller's handle and out-parameter.
    unsafe { get(rt, "rt", out, |h| h.prepared().map(|()| h.rt.output_channels())) }
}

/// The fixed delay of the output in samples (after prepare), to report to the
/// host for latency compensation.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_rt_latency(rt: *const splitsound_rt, out: *mut usize) -> splitsound_status {
    // SAFETY: the caller's handle and out-parameter.
    unsafe { get(rt, "rt", out, |h| h.prepared().map(|()| h.rt.latency_samples())) }
}

/// Whether any two of `n` buffers of `frames` floats overlap.
fn overlapping(ptrs: &[*mut f32], frames: usize) -> bool {
    let bytes = frames * size_of::<f32>();
    ptrs.iter().enumerate().any(|(i, &a)| {
        ptrs[i + 1..].iter().any(|&b| {
            let (a, b) = (a as usize, b as usize);
            a < b + bytes && b < a + bytes
        })
    })
}

/// Separates one block: `inputs` holds `input_count` (the prepared channels)
/// pointers to `frames` floats; `outputs` holds `output_count` (stems × output
/// channels) pointers to `frames` floats, stem-major (`stem * out_channels + c`),
/// which receive the stems delayed by the latency. `frames` is at most the
/// prepared maximum. Outputs may alias inputs (in-place processing); outputs
/// must not overlap each other.
///
/// Real-time safe: allocates nothing, takes no lock, never waits, and records
/// no last error (the status says what was wrong: `NOT_PREPARED`,
/// `BLOCK_TOO_LARGE`, `CHANNEL_MISMATCH`, `NULL_ARGUMENT`, `INVALID_ARGUMENT`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_rt_process(
    rt: *mut splitsound_rt,
    inputs: *const *const f32,
    input_count: usize,
    outputs: *const *mut f32,
    output_count: usize,
    frames: usize,
) -> splitsound_status {
    use splitsound_status as S;
    guard_rt(|| {
        // SAFETY: a live handle, used by this thread only, or NULL.
        let Some(h) = (unsafe { rt.as_mut() }) else { return S::NullArgument };
        if h.channels == 0 {
            return S::NotPrepared;
        }
        if inputs.is_null() || outputs.is_null() {
            return S::NullArgument;
        }
        if input_count != h.channels || output_count != h.outputs {
            return S::ChannelMismatch;
        }
        if frames > h.max_block {
            return S::BlockTooLarge;
        }
        // SAFETY: the counts of pointers the caller promised, checked against prepare.
        let (ins, outs) = unsafe {
            (std::slice::from_raw_parts(inputs, input_count), std::slice::from_raw_parts(outputs, output_count))
        };
        if ins.iter().any(|p| p.is_null()) || outs.iter().any(|p| p.is_null()) {
            return S::NullArgument;
        }
        if !ins.iter().all(|p| p.is_aligned()) || !outs.iter().all(|p| p.is_aligned()) || overlapping(outs, frames) {
            return S::InvalidArgument;
        }
        for (copy, &p) in h.input_copy.iter_mut().zip(ins) {
            // SAFETY: each input holds `frames` floats; `copy` is ours.
            unsafe { std::ptr::copy_nonoverlapping(p, copy.as_mut_ptr(), frames) };
        }
        // The views live only for this call: both vectors are cleared below.
        for copy in &h.input_copy {
            // SAFETY: `copy` holds `max_block` ≥ `frames` floats and is not touched while the view lives.
            h.ins.push(unsafe { std::slice::from_raw_parts(copy.as_ptr(), frames) });
        }
        for &p in outs {
            // SAFETY: each output holds `frames` floats, none overlaps another (checked), and the
            // inputs were copied, so no other view of this memory exists during the call.
            h.outs.push(unsafe { std::slice::from_raw_parts_mut(p, frames) });
        }
        let result = h.rt.process(&h.ins, &mut h.outs);
        h.ins.clear();
        h.outs.clear();
        match result {
            Ok(()) => S::Ok,
            Err(e) => process_status(e),
        }
    })
}

/// Clears all state, as if just prepared (a host's transport jump). Real-time safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_rt_reset(rt: *mut splitsound_rt) -> splitsound_status {
    guard_rt(|| {
        // SAFETY: a live handle, used by this thread only, or NULL.
        let Some(h) = (unsafe { rt.as_mut() }) else { return splitsound_status::NullArgument };
        h.rt.reset();
        splitsound_status::Ok
    })
}

/// The counters into `*out`. Real-time safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_rt_get_stats(
    rt: *const splitsound_rt,
    out: *mut splitsound_rt_stats,
) -> splitsound_status {
    guard_rt(|| {
        // SAFETY: a live handle or NULL.
        let Some(h) = (unsafe { rt.as_ref() }) else { return splitsound_status::NullArgument };
        if out.is_null() {
            return splitsound_status::NullArgument;
        }
        let stats = splitsound_rt_stats {
            underruns: h.rt.underruns(),
            underrun_frames: h.rt.underrun_frames(),
            dropped_input_frames: h.rt.dropped_input_frames(),
            non_finite_samples: h.rt.non_finite_samples(),
            ready_frames: h.rt.ready_frames(),
            worker_failed: h.rt.worker_failed(),
        };
        // SAFETY: checked non-NULL.
        unsafe { put(out, stats) };
        splitsound_status::Ok
    })
}
