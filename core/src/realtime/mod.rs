//! Separation inside an audio callback: [`RealtimeSeparator`] takes blocks of
//! any size up to the one announced in [`RealtimeSeparator::prepare`] and
//! returns the stems of the same samples delayed by a fixed latency.
//!
//! After `prepare`, [`RealtimeSeparator::process`] and
//! [`RealtimeSeparator::reset`] allocate nothing, take no lock and never panic;
//! their errors are a small `Copy` enum, [`ProcessError`].
//!
//! The built-ins `hpss` and `center` run frame by frame inside `process`: each
//! STFT frame is analysed as soon as its samples are in, masked once the median
//! filter's look-ahead frames are in, and overlap-added. The output equals the
//! offline separator's output ([`crate::Separator::separate`]) delayed by
//! [`RealtimeSeparator::latency_samples`]: `n_fft − 1` samples for the STFT
//! window plus `hop` for each frame of look-ahead (half the median filter across
//! time). A stream has no end, so the offline output's last samples (where its
//! filters reflect at the end of the input) have no real-time counterpart.
//! `repet` needs its whole lag window (20 s) of look-ahead and is not offered.
//!
//! Neural models run on a worker thread ([`RealtimeSeparator::threaded`]):
//! `process` writes the block into a lock-free ring, reads the stems the worker
//! finished from another, and returns them delayed by the latency (a segment
//! for the stream to release its output, a segment of headroom for inference,
//! and a block). Where the worker has fallen behind, `process` does not wait:
//! it outputs the [`Underrun`] fallback (silence, or the delayed input in a
//! chosen stem), counts the underrun, and drops the late frames when they come.

mod threaded;

use threaded::{BoxedSeparator, Threaded};
pub use threaded::{ThreadedOptions, Underrun};

use std::sync::Arc;

use realfft::num_complex::Complex32;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use crate::builtin::{
    BuiltinConfig, CenterConfig, HpssConfig, MedianScratch, band, centre_mask, mask_pair, median_filter_1d,
};
use crate::error::{Error, Result};
use crate::stft::{PadMode, StftConfig};

/// The longest block [`RealtimeSeparator::prepare`] accepts (about 24 s at 44.1 kHz).
pub const MAX_BLOCK: usize = 1 << 20;
/// The most input channels [`RealtimeSeparator::prepare`] accepts.
pub const MAX_CHANNELS: usize = 64;

/// Why [`RealtimeSeparator::process`] refused a block. Nothing is allocated to
/// report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    #[error("process() before prepare()")]
    NotPrepared,
    #[error("a block of {got} frames exceeds the prepared maximum of {max}")]
    BlockTooLarge { got: usize, max: usize },
    #[error("{got} input channels, prepared for {expected}")]
    InputChannels { got: usize, expected: usize },
    #[error("{got} output buffers, expected {expected} (stems × output channels)")]
    OutputCount { got: usize, expected: usize },
    #[error("buffers of one block differ in length")]
    Lengths,
}

impl From<ProcessError> for Error {
    fn from(e: ProcessError) -> Self {
        Error::InvalidArgument { name: "process", expected: "a block matching prepare()".into(), actual: e.to_string() }
    }
}

/// A separator for hosts that hand over blocks: see the [module documentation](self).
pub struct RealtimeSeparator {
    method: Method,
    stems: Vec<String>,
    runs_on: String,
    engine: Option<Active>,
    /// The threaded separator while no worker holds it.
    idle: Option<BoxedSeparator>,
    non_finite: u64,
}

enum Active {
    Frames(Box<Engine>),
    Threaded(Box<Threaded>),
}

impl std::fmt::Debug for RealtimeSeparator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RealtimeSeparator")
            .field("stems", &self.stems)
            .field("prepared", &self.engine.is_some())
            .field("latency", &self.latency_samples())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
enum Method {
    Hpss(HpssConfig),
    Center(CenterConfig),
    Threaded(ThreadedOptions),
}

impl RealtimeSeparator {
    /// A built-in by name (`hpss`, `builtin:center`, …) with its defaults.
    pub(crate) fn builtin(name: &str) -> Result<Self> {
        let short = name.strip_prefix("builtin:").unwrap_or(name);
        match short {
            "hpss" => Self::from_config(BuiltinConfig::Hpss(HpssConfig::default())),
            "center" => Self::from_config(BuiltinConfig::Center(CenterConfig::default())),
            "repet" => Err(Error::Unsupported {
                what: "builtin:repet in real time (it looks up to 20 s ahead)".into(),
                suggestion: Some("use builtin:hpss or builtin:center".into()),
            }),
            _ => Err(Error::UnknownSeparator {
                name: name.to_string(),
                available: vec!["builtin:hpss".into(), "builtin:center".into()],
            }),
        }
    }

    /// A built-in from its configuration (validated as the offline one is).
    pub fn from_config(cfg: BuiltinConfig) -> Result<Self> {
        // The offline separator validates the configuration and names the stems.
        let offline = cfg.clone().build()?;
        let stems = offline.stems().to_vec();
        let method = match cfg {
            BuiltinConfig::Hpss(c) => Method::Hpss(c),
            BuiltinConfig::Center(c) => Method::Center(c),
            BuiltinConfig::Repet(_) => return Self::builtin("repet"),
        };
        Ok(Self { method, stems, runs_on: "cpu".into(), engine: None, idle: None, non_finite: 0 })
    }

    /// Any separator whose stream releases output within a segment (HT-Demucs
    /// and MDX-Net models), run on a worker thread.
    pub fn threaded(sep: BoxedSeparator, opts: ThreadedOptions) -> Result<Self> {
        if sep.stream_lag().is_none() {
            return Err(Error::Unsupported {
                what: format!("{} in real time (its output depends on the whole input)", sep.name()),
                suggestion: Some("use an HT-Demucs or MDX-Net model, or builtin:hpss / builtin:center".into()),
            });
        }
        let (stems, runs_on) = (sep.stems().to_vec(), sep.runs_on());
        Ok(Self { method: Method::Threaded(opts), stems, runs_on, engine: None, idle: Some(sep), non_finite: 0 })
    }

    /// Stems, in the order of [`RealtimeSeparator::process`]'s outputs.
    pub fn stems(&self) -> &[String] {
        &self.stems
    }

    /// Where it computes ([`crate::Separator::runs_on`]).
    pub fn runs_on(&self) -> String {
        self.runs_on.clone()
    }

    /// Allocates everything for blocks of up to `max_block` frames of
    /// `channels` channels at `sample_rate`. May be called again to change them.
    pub fn prepare(&mut self, sample_rate: u32, max_block: usize, channels: usize) -> Result<()> {
        crate::audio::check_sample_rate(sample_rate)?;
        if !(1..=MAX_BLOCK).contains(&max_block) {
            return Err(Error::invalid("max_block", format!("1 to {MAX_BLOCK} frames"), max_block));
        }
        if !(1..=MAX_CHANNELS).contains(&channels) {
            return Err(Error::invalid("channels", format!("1 to {MAX_CHANNELS}"), channels));
        }
        if let Method::Threaded(opts) = &self.method {
            let sep = match self.engine.take() {
                Some(Active::Threaded(t)) => t.stop(),
                _ => self.idle.take(),
            };
            let sep = sep.ok_or_else(|| Error::Internal {
                detail: "the real-time worker panicked and took the separator with it".into(),
            })?;
            return match Threaded::start(sep, opts, sample_rate, max_block, channels) {
                Ok(t) => {
                    self.engine = Some(Active::Threaded(Box::new(t)));
                    Ok(())
                }
                Err((e, sep)) => {
                    self.idle = sep;
                    Err(e)
                }
            };
        }
        let engine = Engine::new(&self.method, self.stems.len(), sample_rate, max_block, channels)?;
        self.engine = Some(Active::Frames(Box::new(engine)));
        Ok(())
    }

    /// Output channels per stem (after [`RealtimeSeparator::prepare`]).
    pub fn output_channels(&self) -> usize {
        match &self.engine {
            Some(Active::Frames(e)) => e.out_channels,
            Some(Active::Threaded(t)) => t.out_channels,
            None => 0,
        }
    }

    /// The fixed delay of the output, in samples (after `prepare`).
    pub fn latency_samples(&self) -> usize {
        match &self.engine {
            Some(Active::Frames(e)) => e.latency,
            Some(Active::Threaded(t)) => t.latency,
            None => 0,
        }
    }

    /// `process` calls that had to output the [`Underrun`] fallback for some
    /// frames because the worker had not delivered them (0 for the built-ins).
    pub fn underruns(&self) -> u64 {
        match &self.engine {
            Some(Active::Threaded(t)) => t.underrun_calls,
            _ => 0,
        }
    }

    /// Frames output as the fallback.
    pub fn underrun_frames(&self) -> u64 {
        match &self.engine {
            Some(Active::Threaded(t)) => t.underrun_frames,
            _ => 0,
        }
    }

    /// Input frames dropped because the worker's input ring was full (each such
    /// block restarts the stream, as a reset does).
    pub fn dropped_input_frames(&self) -> u64 {
        match &self.engine {
            Some(Active::Threaded(t)) => t.dropped_input,
            _ => 0,
        }
    }

    /// Frames the next `process` can return without the fallback: a host that
    /// renders faster than real time (a bounce) can wait for this.
    pub fn ready_frames(&self) -> usize {
        match &self.engine {
            Some(Active::Threaded(t)) => t.ready_frames(),
            Some(Active::Frames(e)) => e.max_block,
            None => 0,
        }
    }

    /// Whether the worker stopped on an error (logged); its stems are then the fallback.
    pub fn worker_failed(&self) -> bool {
        matches!(&self.engine, Some(Active::Threaded(t)) if t.failed())
    }

    /// NaN or infinite input samples seen (and processed as zeros).
    pub fn non_finite_samples(&self) -> u64 {
        self.non_finite
    }

    /// Clears all state, as if just prepared. Allocates nothing.
    pub fn reset(&mut self) {
        match &mut self.engine {
            Some(Active::Frames(e)) => e.reset(),
            Some(Active::Threaded(t)) => t.reset(),
            None => {}
        }
        self.non_finite = 0;
    }

    /// Separates one block: `input` holds one slice per channel, `outputs` one
    /// slice per stem and output channel, stem-major (`stem · channels + c`),
    /// all of the same length, at most the prepared maximum.
    pub fn process(&mut self, input: &[&[f32]], outputs: &mut [&mut [f32]]) -> std::result::Result<(), ProcessError> {
        let (channels, out_channels, max_block) = match &self.engine {
            Some(Active::Frames(e)) => (e.channels, e.out_channels, e.max_block),
            Some(Active::Threaded(t)) => (t.channels, t.out_channels, t.max_block),
            None => return Err(ProcessError::NotPrepared),
        };
        if input.len() != channels {
            return Err(ProcessError::InputChannels { got: input.len(), expected: channels });
        }
        let expected = self.stems.len() * out_channels;
        if outputs.len() != expected {
            return Err(ProcessError::OutputCount { got: outputs.len(), expected });
        }
        let n = input.first().map_or(0, |c| c.len());
        if input.iter().any(|c| c.len() != n) || outputs.iter().any(|o| o.len() != n) {
            return Err(ProcessError::Lengths);
        }
        if n > max_block {
            return Err(ProcessError::BlockTooLarge { got: n, max: max_block });
        }
        match &mut self.engine {
            Some(Active::Frames(e)) => {
                self.non_finite += e.push(input);
                for (o, fifo) in outputs.iter_mut().zip(&mut e.fifos) {
                    fifo.pop_into(o);
                }
            }
            Some(Active::Threaded(t)) => self.non_finite += t.process(input, outputs),
            None => return Err(ProcessError::NotPrepared),
        }
        Ok(())
    }
}

/// A fixed-capacity ring of samples.
struct Fifo {
    buf: Vec<f32>,
    read: usize,
    len: usize,
}

impl Fifo {
    fn new(capacity: usize) -> Self {
        Self { buf: vec![0.0; capacity], read: 0, len: 0 }
    }
    fn push(&mut self, x: f32) {
        // Capacity is sized at prepare() for the worst case; never grows.
        debug_assert!(self.len < self.buf.len());
        let cap = self.buf.len();
        let at = (self.read + self.len) % cap;
        self.buf[at] = x;
        self.len = (self.len + 1).min(cap);
    }
    fn pop_into(&mut self, out: &mut [f32]) {
        let cap = self.buf.len();
        for o in out.iter_mut() {
            if self.len == 0 {
                *o = 0.0;
                continue;
            }
            *o = self.buf[self.read];
            self.read = (self.read + 1) % cap;
            self.len -= 1;
        }
    }
    fn clear_with_zeros(&mut self, n: usize) {
        self.read = 0;
        self.len = n.min(self.buf.len());
        self.buf[..self.len].iter_mut().for_each(|x| *x = 0.0);
    }
}

/// What decides the masks of one frame.
enum Masker {
    Hpss { cfg: HpssConfig },
    Center { cfg: CenterConfig, hpss: HpssConfig, lo: usize, hi: usize },
}

/// The frame-by-frame STFT masking engine shared by the built-ins.
struct Engine {
    masker: Masker,
    channels: usize,
    out_channels: usize,
    stems: usize,
    max_block: usize,
    latency: usize,
    n: usize,
    hop: usize,
    bins: usize,
    pad: PadMode,
    window: Vec<f32>,
    synthesis: Vec<f32>,
    fwd: Arc<dyn RealToComplex<f32>>,
    inv: Arc<dyn ComplexToReal<f32>>,
    time: Vec<f32>,
    freq: Vec<Complex32>,
    fft_scratch: Vec<Complex32>,
    /// Reflect padding: the first `n/2 + 1` samples, held until the mirrored
    /// prefix can be built.
    head: Vec<Vec<f32>>,
    started: bool,
    /// The padded signal's current frame, per channel, `fill` samples in.
    frame: Vec<Vec<f32>>,
    fill: usize,
    /// Frames analysed so far.
    analysed: usize,
    /// Frames of look-behind and look-ahead of the median across time.
    back: usize,
    ahead: usize,
    /// Rings of the last `back + ahead + 1` frames: spectra per channel, and
    /// magnitudes per mask source (each channel for hpss, the mid for center).
    spec_ring: Vec<Vec<Vec<Complex32>>>,
    mag_ring: Vec<Vec<Vec<f32>>>,
    /// Per-frame scratch.
    harm: Vec<f32>,
    perc: Vec<f32>,
    masks: Vec<Vec<f32>>,
    gather: Vec<f32>,
    median: MedianScratch,
    stem_spec: Vec<Complex32>,
    residual: Vec<Complex32>,
    /// Overlap-add accumulators per stem and output channel, and the window's.
    ola: Vec<Vec<f32>>,
    env: Vec<f32>,
    /// Padded samples still to drop from the front of the output (`n/2`).
    skip: usize,
    fifos: Vec<Fifo>,
}

impl Engine {
    fn new(method: &Method, stems: usize, rate: u32, max_block: usize, channels: usize) -> Result<Self> {
        let (cfg, masker, out_channels, k) = match method {
            Method::Hpss(c) => {
                if channels == 0 {
                    return Err(Error::invalid("channels", "at least 1", 0));
                }
                (
                    StftConfig::librosa(c.n_fft, c.hop_length),
                    Masker::Hpss { cfg: c.clone() },
                    channels,
                    c.kernel_harmonic,
                )
            }
            Method::Threaded(_) => {
                return Err(Error::invalid("method", "a frame-by-frame built-in", "a threaded separator"));
            }
            Method::Center(c) => {
                if channels != 2 {
                    return Err(Error::InvalidChannels {
                        detail: format!("builtin:center in real time takes stereo input, got {channels} channels"),
                    });
                }
                let stft = StftConfig::torch(c.n_fft, c.hop_length);
                let bins = stft.bins();
                let (lo, hi) = band(c, rate, bins);
                let k = c.percussive_kernel;
                let hpss = HpssConfig { kernel_harmonic: k, kernel_percussive: k, ..HpssConfig::default() };
                (stft, Masker::Center { cfg: c.clone(), hpss, lo, hi }, 2, k)
            }
        };
        let (n, hop, bins) = (cfg.n_fft, cfg.hop_length, cfg.bins());
        // The median over `k` frames reads `k / 2` behind and the rest ahead (0 without one).
        let (back, ahead) = if k == 0 { (0, 0) } else { (k / 2, k - 1 - k / 2) };
        let ring = back + ahead + 1;
        let latency = n - 1 + ahead * hop;
        let mut planner = RealFftPlanner::<f32>::new();
        let fwd = planner.plan_fft_forward(n);
        let inv = planner.plan_fft_inverse(n);
        let scratch = fwd.get_scratch_len().max(inv.get_scratch_len());
        let window = cfg.window_samples();
        let scale = 1.0 / n as f32;
        let sources = if matches!(masker, Masker::Hpss { .. }) { channels } else { 1 };
        let mut median = MedianScratch::default();
        median.reserve(
            bins,
            k.max(1).max(match &masker {
                Masker::Hpss { cfg } => cfg.kernel_percussive,
                Masker::Center { .. } => k,
            }),
        );
        let fifo_cap = latency + max_block + n + hop;
        let mut e = Self {
            masker,
            channels,
            out_channels,
            stems,
            max_block,
            latency,
            n,
            hop,
            bins,
            pad: cfg.pad_mode,
            synthesis: window.iter().map(|w| w * scale).collect(),
            window,
            time: fwd.make_input_vec(),
            freq: fwd.make_output_vec(),
            fft_scratch: vec![Complex32::new(0.0, 0.0); scratch],
            fwd,
            inv,
            // Not `vec![…; channels]`: clones of an empty vector drop its capacity.
            head: (0..channels).map(|_| Vec::with_capacity(n / 2 + 1)).collect(),
            started: false,
            frame: vec![vec![0.0; n]; channels],
            fill: 0,
            analysed: 0,
            back,
            ahead,
            spec_ring: vec![vec![vec![Complex32::new(0.0, 0.0); bins]; ring]; channels],
            mag_ring: vec![vec![vec![0.0; bins]; ring]; sources],
            harm: vec![0.0; bins],
            perc: vec![0.0; bins],
            masks: vec![vec![0.0; bins]; 2 * channels],
            gather: Vec::with_capacity(k.max(1)),
            median,
            stem_spec: vec![Complex32::new(0.0, 0.0); bins],
            residual: vec![Complex32::new(0.0, 0.0); bins],
            ola: vec![vec![0.0; n]; stems * out_channels],
            env: vec![0.0; n],
            skip: n / 2,
            fifos: (0..stems * out_channels).map(|_| Fifo::new(fifo_cap)).collect(),
        };
        e.reset();
        Ok(e)
    }

    fn reset(&mut self) {
        self.head.iter_mut().for_each(Vec::clear);
        self.started = false;
        self.fill = 0;
        self.analysed = 0;
        self.ola.iter_mut().flatten().for_each(|x| *x = 0.0);
        self.env.iter_mut().for_each(|x| *x = 0.0);
        self.skip = self.n / 2;
        let latency = self.latency;
        self.fifos.iter_mut().for_each(|f| f.clear_with_zeros(latency));
        if self.pad == PadMode::Constant {
            // The zeros librosa pads in front.
            self.frame.iter_mut().for_each(|f| f[..self.n / 2].iter_mut().for_each(|x| *x = 0.0));
            self.fill = self.n / 2;
            self.started = true;
        }
    }

    /// Takes one block; returns how many samples were not finite (taken as 0).
    fn push(&mut self, input: &[&[f32]]) -> u64 {
        let len = input.first().map_or(0, |c| c.len());
        let half = self.n / 2;
        let mut bad = 0u64;
        let mut pos = 0;
        if !self.started {
            // Reflect padding mirrors x[1..=n/2], so the first frame waits for them.
            let take = (half + 1 - self.head[0].len()).min(len);
            for (h, x) in self.head.iter_mut().zip(input) {
                for &v in &x[..take] {
                    bad += u64::from(!v.is_finite());
                    h.push(if v.is_finite() { v } else { 0.0 });
                }
            }
            pos = take;
            if self.head[0].len() < half + 1 {
                return bad;
            }
            self.started = true;
            for (f, h) in self.frame.iter_mut().zip(&self.head) {
                for (i, d) in f[..half].iter_mut().enumerate() {
                    *d = h[half - i];
                }
            }
            self.fill = half;
            // Taking the vectors out and back moves no memory.
            let head = std::mem::take(&mut self.head);
            self.append(&head, 0, half + 1);
            self.head = head;
            self.head.iter_mut().for_each(Vec::clear);
        }
        bad + self.append(input, pos, len)
    }

    /// Appends `x[..][pos..end]` to the padded signal, analysing every frame
    /// that fills; returns how many samples were not finite (taken as 0).
    fn append<S: AsRef<[f32]>>(&mut self, x: &[S], mut pos: usize, end: usize) -> u64 {
        let mut bad = 0u64;
        while pos < end {
            let take = (self.n - self.fill).min(end - pos);
            for (f, x) in self.frame.iter_mut().zip(x) {
                for (d, &v) in f[self.fill..self.fill + take].iter_mut().zip(&x.as_ref()[pos..pos + take]) {
                    bad += u64::from(!v.is_finite());
                    *d = if v.is_finite() { v } else { 0.0 };
                }
            }
            self.fill += take;
            pos += take;
            if self.fill == self.n {
                self.analyse();
                for f in &mut self.frame {
                    f.copy_within(self.hop.., 0);
                }
                self.fill -= self.hop;
            }
        }
        bad
    }

    fn analyse(&mut self) {
        let slot = self.analysed % self.spec_ring[0].len();
        for c in 0..self.channels {
            for ((d, s), w) in self.time.iter_mut().zip(&self.frame[c]).zip(&self.window) {
                *d = s * w;
            }
            // Lengths are fixed at prepare(), so the FFT cannot fail.
            let _ = self.fwd.process_with_scratch(&mut self.time, &mut self.freq, &mut self.fft_scratch);
            self.spec_ring[c][slot].copy_from_slice(&self.freq);
        }
        match &self.masker {
            Masker::Hpss { .. } => {
                for c in 0..self.channels {
                    let (spec, mag) = (&self.spec_ring[c][slot], &mut self.mag_ring[c][slot]);
                    mag.iter_mut().zip(spec).for_each(|(m, z)| *m = z.norm());
                }
            }
            Masker::Center { .. } => {
                let (l, r) = (&self.spec_ring[0][slot], &self.spec_ring[1][slot]);
                for ((m, a), b) in self.mag_ring[0][slot].iter_mut().zip(l).zip(r) {
                    *m = 0.5 * (a + b).norm();
                }
            }
        }
        self.analysed += 1;
        if self.analysed > self.ahead {
            let t = self.analysed - 1 - self.ahead;
            self.synthesise(t);
        }
    }

    /// `scipy.ndimage.median_filter` across time (reflect at the start) of
    /// magnitude source `s` at frame `t`, per bin, into `self.harm`.
    fn time_median(&mut self, s: usize, t: usize, k: usize) {
        let ring = self.mag_ring[s].len();
        let rank = k / 2;
        for f in 0..self.bins {
            self.gather.clear();
            for j in 0..k as isize {
                let i = t as isize - self.back as isize + j;
                let frame = if i < 0 { (-i - 1) as usize } else { i as usize };
                self.gather.push(self.mag_ring[s][frame % ring][f]);
            }
            let (_, m, _) = self.gather.select_nth_unstable_by(rank, f32::total_cmp);
            self.harm[f] = *m;
        }
    }

    fn synthesise(&mut self, t: usize) {
        let slot = t % self.spec_ring[0].len();
        // Masks: per channel (hpss: harmonic, percussive), or one (center).
        match &self.masker {
            Masker::Hpss { cfg } => {
                let cfg = cfg.clone();
                for c in 0..self.channels {
                    self.time_median(c, t, cfg.kernel_harmonic);
                    let mag = &self.mag_ring[c][slot];
                    median_filter_1d(mag, cfg.kernel_percussive, &mut self.perc, &mut self.median);
                    let (a, b) = self.masks.split_at_mut(2 * c + 1);
                    let (mask_h, mask_p) = (&mut a[2 * c], &mut b[0]);
                    for f in 0..self.bins {
                        (mask_h[f], mask_p[f]) = mask_pair(self.harm[f], self.perc[f], &cfg);
                    }
                }
            }
            Masker::Center { cfg, hpss, lo, hi } => {
                let (k, band) = (cfg.percussive_kernel, *lo..=*hi);
                let hp = hpss.clone();
                let (l, r) = (&self.spec_ring[0][slot], &self.spec_ring[1][slot]);
                let mask = &mut self.masks[0];
                mask.iter_mut().for_each(|m| *m = 0.0);
                centre_mask(cfg, l, r, band, mask);
                if k > 0 {
                    self.time_median(0, t, k);
                    median_filter_1d(&self.mag_ring[0][slot], k, &mut self.perc, &mut self.median);
                    for f in 0..self.bins {
                        self.masks[0][f] *= mask_pair(self.harm[f], self.perc[f], &hp).0;
                    }
                }
            }
        }
        // Stems: the masked ones in order, the last the mixture minus them.
        let masked = self.stems - 1;
        for c in 0..self.out_channels {
            self.residual.copy_from_slice(&self.spec_ring[c][slot]);
            for s in 0..self.stems {
                if s < masked {
                    let mask = match self.masker {
                        Masker::Hpss { .. } => &self.masks[2 * c + s],
                        Masker::Center { .. } => &self.masks[0],
                    };
                    let x = &self.spec_ring[c][slot];
                    for ((d, z), m) in self.stem_spec.iter_mut().zip(x).zip(mask) {
                        *d = *z * *m;
                    }
                    self.residual.iter_mut().zip(&self.stem_spec).for_each(|(r, s)| *r -= s);
                } else {
                    self.stem_spec.copy_from_slice(&self.residual);
                }
                self.freq.copy_from_slice(&self.stem_spec);
                self.freq[0].im = 0.0;
                let last = self.bins - 1;
                self.freq[last].im = 0.0;
                let _ = self.inv.process_with_scratch(&mut self.freq, &mut self.time, &mut self.fft_scratch);
                let acc = &mut self.ola[s * self.out_channels + c];
                for (o, (x, w)) in acc.iter_mut().zip(self.time.iter().zip(&self.synthesis)) {
                    *o += x * w;
                }
            }
        }
        for (e, w) in self.env.iter_mut().zip(&self.window) {
            *e += w * w;
        }
        // The first hop of the accumulators is final: normalise and emit it.
        let hop = self.hop;
        for i in 0..hop {
            let e = self.env[i];
            let inv = if e > 1e-11 { 1.0 / e } else { 0.0 };
            if self.skip > 0 {
                self.skip -= 1;
                continue;
            }
            for (acc, fifo) in self.ola.iter().zip(&mut self.fifos) {
                fifo.push(acc[i] * inv);
            }
        }
        for acc in self.ola.iter_mut().chain(std::iter::once(&mut self.env)) {
            acc.copy_within(hop.., 0);
            let n = acc.len();
            acc[n - hop..].iter_mut().for_each(|x| *x = 0.0);
        }
    }
}
