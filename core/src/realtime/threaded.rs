//! Real-time separation by a separator that cannot run inside the callback
//! (a neural model): a worker thread runs its [`crate::stream::StemStream`],
//! fed and drained through lock-free single-producer single-consumer rings.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::resample::StreamResampler;
use crate::separator::{SeparateOptions, Separator};
use crate::stream::{StreamSpec, into_frames, planar, stem_frames};

/// What `process` outputs where the worker has not delivered in time.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Underrun {
    /// Silence in every stem.
    #[default]
    Silence,
    /// The input (delayed by the latency, like the stems) in this stem, silence in the others.
    DryTo(String),
}

/// Options of a threaded real-time separator.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThreadedOptions {
    /// Extra delay, in seconds, for the worker to finish a segment before its
    /// output is due; `None`: one segment (enough when inference runs at least
    /// twice as fast as real time).
    pub headroom_secs: Option<f64>,
    /// Mean and standard deviation live input is normalised by where the model
    /// normalises by the whole track's (HT-Demucs); live input has no whole track.
    /// The default, (0, 0.1), is typical of mastered music; measure a passage
    /// of the material for better results.
    pub input_stats: (f32, f32),
    pub underrun: Underrun,
}

impl Default for ThreadedOptions {
    fn default() -> Self {
        Self { headroom_secs: None, input_stats: (0.0, 0.1), underrun: Underrun::Silence }
    }
}

/// The writing half of a ring of frames, `width` samples each (rtrb: one
/// producer and one consumer by construction, no lock, no allocation after
/// creation). Frames go in whole, so slots / width counts frames exactly.
struct FrameWriter {
    ring: rtrb::Producer<f32>,
    width: usize,
    /// Frames written since creation.
    written: u64,
}

/// The reading half.
struct FrameReader {
    ring: rtrb::Consumer<f32>,
    width: usize,
    /// Frames read since creation.
    read: u64,
}

fn frame_ring(frames: usize, width: usize) -> (FrameWriter, FrameReader) {
    let (p, c) = rtrb::RingBuffer::new(frames * width);
    (FrameWriter { ring: p, width, written: 0 }, FrameReader { ring: c, width, read: 0 })
}

impl FrameWriter {
    /// Frames that can be written now.
    fn space(&self) -> usize {
        self.ring.slots() / self.width
    }
    /// Writes `n` frames (at most [`FrameWriter::space`]): sample `s` of frame
    /// `i` is `sample(i, s)`.
    fn write(&mut self, n: usize, mut sample: impl FnMut(usize, usize) -> f32) {
        let w = self.width;
        let chunk = self.ring.write_chunk_uninit(n * w).expect("the caller checked the space");
        chunk.fill_from_iter((0..n * w).map(|k| sample(k / w, k % w)));
        self.written += n as u64;
    }
}

impl FrameReader {
    /// Frames ready to read.
    fn available(&self) -> usize {
        self.ring.slots() / self.width
    }
    /// Reads `n` frames (at most [`FrameReader::available`]), handing sample
    /// `s` of frame `i` to `take(i, s, value)`.
    fn read(&mut self, n: usize, mut take: impl FnMut(usize, usize, f32)) {
        let w = self.width;
        let chunk = self.ring.read_chunk(n * w).expect("the caller checked what is available");
        let (a, b) = chunk.as_slices();
        for (k, &v) in a.iter().chain(b).enumerate() {
            take(k / w, k % w, v);
        }
        chunk.commit_all();
        self.read += n as u64;
    }
    /// Drops `n` frames (at most [`FrameReader::available`]).
    fn skip(&mut self, n: usize) {
        if n > 0 {
            self.ring.read_chunk(n * self.width).expect("the caller checked what is available").commit_all();
            self.read += n as u64;
        }
    }
}

/// What the audio thread and the worker share besides the rings.
struct Shared {
    stop: AtomicBool,
    /// Bumped by `reset`; `reset_at` is the count of input frames pushed before it.
    epoch: AtomicU64,
    reset_at: AtomicU64,
    /// The epoch the worker runs, and the output ring's write count when it began.
    acked: AtomicU64,
    epoch_start: AtomicU64,
    /// Set when the worker stopped on an error.
    failed: AtomicBool,
}

pub(crate) type BoxedSeparator = Box<dyn Separator + Send>;

pub(crate) struct Threaded {
    pub channels: usize,
    pub out_channels: usize,
    pub max_block: usize,
    pub latency: usize,
    /// The audio thread's halves: it writes the input and reads the stems.
    input: FrameWriter,
    output: FrameReader,
    shared: Arc<Shared>,
    worker: Option<JoinHandle<BoxedSeparator>>,
    pushed: u64,
    epoch: u64,
    prefill: usize,
    /// Outputs covered by the fallback, to skip when they arrive.
    debt: u64,
    /// The input in the output's channels, delayed by the latency.
    dry: Vec<Vec<f32>>,
    dry_pos: usize,
    dry_stem: Option<usize>,
    pub underrun_calls: u64,
    pub underrun_frames: u64,
    pub dropped_input: u64,
}

impl Threaded {
    /// Starts the worker. On error the separator comes back (unless the thread
    /// could not be spawned, which takes it down with the closure).
    pub fn start(
        sep: BoxedSeparator,
        opts: &ThreadedOptions,
        rate: u32,
        max_block: usize,
        channels: usize,
    ) -> std::result::Result<Self, (Error, Option<BoxedSeparator>)> {
        let Some(lag) = sep.stream_lag() else {
            let e = Error::Unsupported {
                what: format!("{} in real time (its output depends on the whole input)", sep.name()),
                suggestion: Some("use an HT-Demucs or MDX-Net model, or builtin:hpss / builtin:center".into()),
            };
            return Err((e, Some(sep)));
        };
        let model_rate = sep.sample_rate().unwrap_or(rate);
        let stems = sep.stems().len();
        let dry_stem = match &opts.underrun {
            Underrun::Silence => None,
            Underrun::DryTo(name) => match sep.stems().iter().position(|s| s == name) {
                Some(i) => Some(i),
                None => {
                    let e = Error::UnknownStem { stem: name.clone(), available: sep.stems().to_vec() };
                    return Err((e, Some(sep)));
                }
            },
        };
        let to_host = |n: usize| (n as u64 * rate as u64).div_ceil(model_rate as u64) as usize;
        // Each resampler holds back up to about two of its blocks.
        let slack = if model_rate == rate { 0 } else { 4 * 2048 };
        let headroom = opts.headroom_secs.map_or(to_host(lag), |s| (s.max(0.0) * rate as f64) as usize);
        let latency = to_host(lag) + slack + max_block + headroom;
        // The stream converts the input to the model's channels (the policy of
        // AudioBuffer::to_channels); its stems have the model's.
        let out_channels = sep.output_channels(channels);
        let capacity = 2 * latency + 4 * max_block + rate as usize;
        let (input, worker_input) = frame_ring(capacity, channels);
        let (worker_output, output) = frame_ring(capacity, stems * out_channels);
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            reset_at: AtomicU64::new(0),
            acked: AtomicU64::new(u64::MAX),
            epoch_start: AtomicU64::new(0),
            failed: AtomicBool::new(false),
        });
        let job = Job {
            input: worker_input,
            output: worker_output,
            shared: shared.clone(),
            rate,
            model_rate,
            channels,
            out_channels,
            stems,
            stats: opts.input_stats,
        };
        let worker = std::thread::Builder::new()
            .name("splitsound-realtime".into())
            .spawn(move || job.run(sep))
            .map_err(|e| (Error::Io { path: None, source: e }, None))?;
        Ok(Self {
            channels,
            out_channels,
            max_block,
            latency,
            input,
            output,
            shared,
            worker: Some(worker),
            pushed: 0,
            epoch: 0,
            prefill: latency,
            debt: 0,
            dry: vec![vec![0.0; latency + max_block]; out_channels],
            dry_pos: 0,
            dry_stem,
            underrun_calls: 0,
            underrun_frames: 0,
            dropped_input: 0,
        })
    }

    /// Stops the worker and returns the separator.
    pub fn stop(mut self) -> Option<BoxedSeparator> {
        self.shared.stop.store(true, Ordering::Release);
        self.worker.take().and_then(|w| w.join().ok())
    }

    pub fn reset(&mut self) {
        self.shared.reset_at.store(self.pushed, Ordering::Release);
        self.epoch += 1;
        self.shared.epoch.store(self.epoch, Ordering::Release);
        self.prefill = self.latency;
        self.debt = 0;
        self.dry.iter_mut().flatten().for_each(|x| *x = 0.0);
        self.dry_pos = 0;
    }

    /// Frames the next `process` can return without falling back.
    pub fn ready_frames(&self) -> usize {
        if self.shared.acked.load(Ordering::Acquire) != self.epoch {
            return self.prefill;
        }
        let start = self.shared.epoch_start.load(Ordering::Acquire);
        let stale = start.saturating_sub(self.output.read);
        let usable = (self.output.available() as u64).saturating_sub(stale + self.debt);
        self.prefill + usable as usize
    }

    pub fn failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// Separates one block (shapes checked by the caller); returns the number
    /// of non-finite input samples (taken as zeros).
    pub fn process(&mut self, input: &[&[f32]], outputs: &mut [&mut [f32]]) -> u64 {
        let n = input.first().map_or(0, |c| c.len());
        let mut bad = 0u64;
        let dl = self.dry[0].len();
        for i in 0..n {
            for c in 0..self.out_channels {
                let v = input[c.min(self.channels - 1)][i];
                self.dry[c][(self.dry_pos + i) % dl] = if v.is_finite() { v } else { 0.0 };
            }
        }
        // Input into the ring; if the worker fell so far behind that it is
        // full, the block is dropped and the stream restarts (a reset).
        if self.input.space() >= n {
            self.input.write(n, |i, c| {
                let v = input[c][i];
                bad += u64::from(!v.is_finite());
                if v.is_finite() { v } else { 0.0 }
            });
            self.pushed += n as u64;
        } else {
            self.dropped_input += n as u64;
            self.reset();
        }
        // Output: the latency's zeros, then the worker's frames of this epoch.
        let mut i = 0;
        while i < n && self.prefill > 0 {
            outputs.iter_mut().for_each(|o| o[i] = 0.0);
            self.prefill -= 1;
            i += 1;
        }
        if i < n {
            let mut got = 0;
            if self.shared.acked.load(Ordering::Acquire) == self.epoch {
                let start = self.shared.epoch_start.load(Ordering::Acquire);
                let stale = start.saturating_sub(self.output.read) as usize;
                self.output.skip(stale.min(self.output.available()));
                let skip = (self.debt as usize).min(self.output.available());
                self.output.skip(skip);
                self.debt -= skip as u64;
                if self.debt == 0 {
                    got = self.output.available().min(n - i);
                    self.output.read(got, |k, s, v| outputs[s][i + k] = v);
                }
            } else {
                // The worker has not begun this epoch: what it delivers is stale.
                self.output.skip(self.output.available());
            }
            let missing = n - i - got;
            if missing > 0 {
                self.underrun_calls += 1;
                self.underrun_frames += missing as u64;
                self.debt += missing as u64;
                for k in i + got..n {
                    // The dry sample written `latency` frames before this one.
                    let at = (self.dry_pos + k + dl - self.latency % dl) % dl;
                    for (s, o) in outputs.iter_mut().enumerate() {
                        let (stem, c) = (s / self.out_channels, s % self.out_channels);
                        o[k] = if Some(stem) == self.dry_stem { self.dry[c][at] } else { 0.0 };
                    }
                }
            }
        }
        self.dry_pos = (self.dry_pos + n) % dl;
        bad
    }
}

impl Drop for Threaded {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// The worker's side.
struct Job {
    /// The worker's halves: it reads the input and writes the stems.
    input: FrameReader,
    output: FrameWriter,
    shared: Arc<Shared>,
    rate: u32,
    model_rate: u32,
    channels: usize,
    out_channels: usize,
    stems: usize,
    stats: (f32, f32),
}

enum Stop {
    Reset,
    Quit,
}

impl Job {
    fn run(mut self, mut sep: BoxedSeparator) -> BoxedSeparator {
        let mut consumed = 0u64;
        loop {
            let epoch = self.shared.epoch.load(Ordering::Acquire);
            // Input pushed before this epoch's reset is stale.
            let reset_at = if epoch == 0 { 0 } else { self.shared.reset_at.load(Ordering::Acquire) };
            while consumed < reset_at {
                if self.shared.stop.load(Ordering::Acquire) {
                    return sep;
                }
                let n = (self.input.available() as u64).min(reset_at - consumed) as usize;
                self.input.skip(n);
                consumed += n as u64;
                if n == 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            self.shared.epoch_start.store(self.output.written, Ordering::Release);
            self.shared.acked.store(epoch, Ordering::Release);
            match self.run_epoch(sep.as_mut(), epoch, &mut consumed) {
                Ok(Stop::Reset) => {}
                Ok(Stop::Quit) => return sep,
                Err(e) => {
                    log::error!("real-time worker stopped: {e}");
                    self.shared.failed.store(true, Ordering::Release);
                    return sep;
                }
            }
        }
    }

    fn interrupted(&self, epoch: u64) -> Option<Stop> {
        if self.shared.stop.load(Ordering::Acquire) {
            Some(Stop::Quit)
        } else if self.shared.epoch.load(Ordering::Acquire) != epoch {
            Some(Stop::Reset)
        } else {
            None
        }
    }

    fn run_epoch(&mut self, sep: &mut (dyn Separator + Send), epoch: u64, consumed: &mut u64) -> Result<Stop> {
        let spec = StreamSpec { sample_rate: self.model_rate, channels: self.channels, frames: None };
        let mut stream = sep.stream(spec, SeparateOptions::default())?;
        stream.set_input_stats(self.stats.0, self.stats.1);
        if stream.needs_prepass() {
            return Err(Error::invalid(
                "input_stats",
                "statistics the stream accepts",
                "a stream that needs a prepass",
            ));
        }
        let resample = self.rate != self.model_rate;
        let mut rin = resample.then(|| StreamResampler::new(self.rate, self.model_rate, self.channels)).transpose()?;
        let mut rout = Vec::new();
        if resample {
            for _ in 0..self.stems {
                rout.push(StreamResampler::new(self.model_rate, self.rate, self.out_channels)?);
            }
        }
        let mut block: Vec<Vec<f32>> = vec![Vec::new(); self.channels];
        loop {
            if let Some(stop) = self.interrupted(epoch) {
                return Ok(stop);
            }
            let n = self.input.available().min(1 << 14);
            if n == 0 {
                std::thread::sleep(Duration::from_micros(300));
                continue;
            }
            // Frames that arrived after a reset belong to the next epoch: leave
            // them in the ring.
            if let Some(stop) = self.interrupted(epoch) {
                return Ok(stop);
            }
            block.iter_mut().for_each(|b| b.resize(n, 0.0));
            self.input.read(n, |i, c, v| block[c][i] = v);
            *consumed += n as u64;
            let model_block = match &mut rin {
                Some(r) => {
                    let mut out = vec![Vec::new(); self.channels];
                    r.process(&planar(&block), &mut out)?;
                    out
                }
                None => block.clone(),
            };
            let out = if model_block[0].is_empty() {
                stem_frames(self.stems)
            } else {
                into_frames(stream.process(&planar(&model_block))?)
            };
            let out = if resample {
                let mut back = Vec::with_capacity(self.stems);
                for (r, s) in rout.iter_mut().zip(out) {
                    let mut o = vec![Vec::new(); self.out_channels];
                    if s.len() == self.out_channels {
                        r.process(&planar(&s), &mut o)?;
                    }
                    back.push(o);
                }
                back
            } else {
                out
            };
            let frames = out.first().and_then(|s| s.first()).map_or(0, Vec::len);
            let mut done = 0;
            while done < frames {
                let room = self.output.space().min(frames - done);
                if room == 0 {
                    if let Some(stop) = self.interrupted(epoch) {
                        return Ok(stop);
                    }
                    std::thread::sleep(Duration::from_micros(300));
                    continue;
                }
                let oc = self.out_channels;
                self.output.write(room, |i, s| out[s / oc][s % oc][done + i]);
                done += room;
            }
        }
    }
}
