//! SAM-Audio (Meta, facebookresearch/sam-audio): separates the sound a text
//! describes from a mixture, returning it (`target`) and everything else
//! (`residual`), as its `separate()` computes them for a text prompt with no
//! time spans, no video and no reranking.
//!
//! The package's four graphs, in `files` order (`python/tools/export_sam_audio.py`):
//! 0. text encoder: `input_ids`, `attention_mask` [B, L] → `text_features` [B, L, D];
//! 1. codec encoder: `audio` [B, 1, N] (N a multiple of the hop) → `latent_mean` [B, C, N/hop];
//! 2. velocity (the projection, the conditioning and the diffusion transformer):
//!    `noisy` [B, T, 2C], `time` [B], `audio_features` [B, T, 2C],
//!    `text_features` [B, L, D], `text_mask` [B, L], `audio_mask` [B, T],
//!    `anchor_ids` [B, T] → `velocity` [B, T, 2C];
//! 3. codec decoder: `latent` [B, C, T], `message` [B, bits] → `audio` [B, 1, T·hop].
//!
//! Ids, masks and bits travel as `f32` (exact below 2^24). What runs here, as
//! the reference's processor and `separate()` do (FACTS.md of the reference data):
//! - T5 tokenisation from the package's tokenizer.json, `</s>` appended, padded
//!   with `<pad>` to the batch's longest;
//! - the batch's audio zero-padded to its longest, then reflect-padded to a
//!   whole number of hops; frames past an item's `ceil(N / hop)` are masked;
//! - the features: the codec's latent mean, transposed and repeated ([B, T, 2C]);
//! - the ODE from t = 0 (the noise) to 1: `ode_steps` midpoint steps,
//!   `y_mid = y + h/2 · f(t, y)`, `y += h · f(t + h/2, y_mid)`, in `f32`;
//! - the split: channels `0..C` of the final state are the target, `C..2C`
//!   the residual; both decoded with the watermark message;
//! - each output cut to `ceil(N / hop) · hop` samples.
//!
//! Beyond the reference (which takes the whole input at once, its memory
//! growing with the square of the length): an input longer than
//! `segment_samples` is separated in chunks of that length that overlap by
//! `crossfade_samples` and are cross-faded linearly; the description is
//! encoded once; the noise of every chunk is its frames' rows of one noise
//! array over the whole input.

use std::path::Path;

use ndarray::{Array1, Array2, Array3, ArrayD, Axis};

use super::Model;
use super::demucs::SplitMix64;
use super::manifest::{Manifest, SamAudioParams, TensorSpec};
use crate::error::{Error, Result};
use crate::separator::{SeparateOptions, Stage};

const TEXT: usize = 0;
const ENCODER: usize = 1;
const VELOCITY: usize = 2;
const DECODER: usize = 3;

/// A mixture and what to take from it, for [`crate::model::NeuralSeparator::separate_described`].
#[derive(Debug, Clone, Copy)]
pub struct Described<'a> {
    /// Mono, at the package's rate.
    pub audio: &'a [f32],
    pub description: &'a str,
}

/// The reproducible draws of a run: the ODE's initial noise, [frames, 2C] per
/// item (row-major), and the watermark's message bits, [2, bits] per item
/// (the target's, then the residual's).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Draws {
    pub noise: Vec<f32>,
    pub message: Vec<f32>,
}

/// The family's fixed parts: its parameters, sizes and tokenizer.
pub(crate) struct SamAudio {
    p: SamAudioParams,
    tokenizer: tokenizers::Tokenizer,
    pad_id: u32,
    unk_id: Option<u32>,
    /// Latent channels (C) and text feature width (D).
    c: usize,
}

impl std::fmt::Debug for SamAudio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamAudio").field("params", &self.p).field("latent_channels", &self.c).finish_non_exhaustive()
    }
}

fn spec(name: &str, shape: &[i64]) -> TensorSpec {
    TensorSpec { name: name.into(), shape: shape.to_vec() }
}

impl SamAudio {
    /// Checks the manifest (four graphs agreeing on C, D and the message
    /// bits) and loads the tokenizer from next to the manifest.
    pub(crate) fn new(m: &Manifest, manifest_path: &Path) -> std::result::Result<Self, String> {
        let p = m.sam_audio.clone().ok_or("the sam-audio family needs a `sam_audio` section")?;
        if m.channels != 1 {
            return Err(format!("sam-audio works on mono (channels 1), the manifest says {}", m.channels));
        }
        if m.stems != ["target", "residual"] {
            return Err(format!("sam-audio's stems are [\"target\", \"residual\"], the manifest says {:?}", m.stems));
        }
        if p.hop_length == 0 || p.latent_channels == 0 || p.ode_steps == 0 || p.watermark_bits == 0 {
            return Err("sam_audio: hop_length, latent_channels, ode_steps and watermark_bits must be positive".into());
        }
        if p.text_max_length < 2 {
            return Err("sam_audio.text_max_length must be at least 2".into());
        }
        let hop = p.hop_length;
        if !m.segment_samples.is_multiple_of(hop) || !p.crossfade_samples.is_multiple_of(hop) {
            return Err(format!("segment_samples and sam_audio.crossfade_samples must be multiples of the hop, {hop}"));
        }
        if p.crossfade_samples >= m.segment_samples {
            return Err("sam_audio.crossfade_samples must be shorter than segment_samples".into());
        }
        if m.files.len() != 4 {
            return Err(format!(
                "sam-audio has four graphs (text encoder, codec encoder, velocity, codec decoder), the manifest lists {}",
                m.files.len()
            ));
        }
        let c = p.latent_channels as i64;
        let io = |i: usize| {
            let f = &m.files[i];
            match (&f.inputs, &f.outputs) {
                (Some(a), Some(b)) => Ok((a, b)),
                _ => Err(format!("{}: a sam-audio file names its own inputs and outputs", f.path)),
            }
        };
        // The text width D comes from the text encoder's output.
        let d = io(TEXT)?.1.first().and_then(|t| t.shape.get(2)).copied().unwrap_or(-1);
        if d <= 0 {
            return Err("the text encoder's `text_features` needs a fixed width, [-1, -1, D]".into());
        }
        let bits = p.watermark_bits as i64;
        let want: [(Vec<TensorSpec>, Vec<TensorSpec>); 4] = [
            (
                vec![spec("input_ids", &[-1, -1]), spec("attention_mask", &[-1, -1])],
                vec![spec("text_features", &[-1, -1, d])],
            ),
            (vec![spec("audio", &[-1, 1, -1])], vec![spec("latent_mean", &[-1, c, -1])]),
            (
                vec![
                    spec("noisy", &[-1, -1, 2 * c]),
                    spec("time", &[-1]),
                    spec("audio_features", &[-1, -1, 2 * c]),
                    spec("text_features", &[-1, -1, d]),
                    spec("text_mask", &[-1, -1]),
                    spec("audio_mask", &[-1, -1]),
                    spec("anchor_ids", &[-1, -1]),
                ],
                vec![spec("velocity", &[-1, -1, 2 * c])],
            ),
            (vec![spec("latent", &[-1, c, -1]), spec("message", &[-1, bits])], vec![spec("audio", &[-1, 1, -1])]),
        ];
        let show = |specs: &[TensorSpec]| {
            specs.iter().map(|t| format!("{} {:?}", t.name, t.shape)).collect::<Vec<_>>().join(", ")
        };
        for (i, (wi, wo)) in want.iter().enumerate() {
            let (hi, ho) = io(i)?;
            if hi != wi || ho != wo {
                return Err(format!(
                    "{}: the sam-audio graphs disagree on shapes: with C = {c}, D = {d} and {bits} message bits, \
                     graph {i} takes ({}) and gives ({}); the manifest says ({}) and ({})",
                    m.files[i].path,
                    show(wi),
                    show(wo),
                    show(hi),
                    show(ho)
                ));
            }
        }
        if p.tokenizer.is_empty() || Path::new(&p.tokenizer).is_absolute() {
            return Err(format!("sam_audio.tokenizer `{}` must be relative to the manifest", p.tokenizer));
        }
        let dir = manifest_path.parent().unwrap_or(Path::new("."));
        let tok_path = dir.join(&p.tokenizer);
        let mut tokenizer = tokenizers::Tokenizer::from_file(&tok_path)
            .map_err(|e| format!("tokenizer {}: {e}", tok_path.display()))?;
        // Padding and truncation are ours to do (a tokenizer.json may ask for them).
        tokenizer.with_padding(None);
        tokenizer.with_truncation(None).map_err(|e| format!("tokenizer {}: {e}", tok_path.display()))?;
        let pad_id = tokenizer.token_to_id("<pad>").ok_or("the tokenizer has no `<pad>` token")?;
        let unk_id = tokenizer.token_to_id("<unk>");
        Ok(Self { c: p.latent_channels, p, tokenizer, pad_id, unk_id })
    }

    pub(crate) fn params(&self) -> &SamAudioParams {
        &self.p
    }

    /// Latent frames of `samples` samples.
    pub(crate) fn frames(&self, samples: usize) -> usize {
        samples.div_ceil(self.p.hop_length)
    }

    /// Token ids of a description, `</s>` included, as the reference's
    /// tokenizer call gives them; refuses what it could not encode faithfully.
    pub(crate) fn tokenize(&self, description: &str) -> Result<Vec<u32>> {
        let bad =
            |expected: String, actual: String| Err(Error::InvalidArgument { name: "description", expected, actual });
        if description.trim().is_empty() {
            return bad("a description of the sound to separate".into(), "an empty description".into());
        }
        let chars = description.chars().count();
        if chars > crate::MAX_DESCRIPTION_CHARS {
            return bad(format!("at most {} characters", crate::MAX_DESCRIPTION_CHARS), format!("{chars} characters"));
        }
        let enc = self.tokenizer.encode(description, true).map_err(|e| Error::InvalidArgument {
            name: "description",
            expected: "text the tokenizer can encode".into(),
            actual: e.to_string(),
        })?;
        let ids = enc.get_ids();
        if let Some(unk) = self.unk_id
            && ids.contains(&unk)
        {
            let unknown: Vec<&str> = ids
                .iter()
                .zip(enc.get_offsets())
                .filter(|(id, _)| **id == unk)
                .filter_map(|(_, &(a, b))| description.get(a..b))
                .collect();
            {
                return bad(
                    "words the model's tokenizer can encode (its vocabulary lacks some characters used)".into(),
                    format!("{description:?}: cannot encode {unknown:?}"),
                );
            }
        }
        if ids.len() > self.p.text_max_length {
            return bad(
                format!("at most {} tokens (the text encoder's limit)", self.p.text_max_length),
                format!("{} tokens", ids.len()),
            );
        }
        Ok(ids.to_vec())
    }

    /// The T5 features of the descriptions, padded to the longest: [B, L, D]
    /// and the mask [B, L].
    pub(crate) fn encode_text(&self, model: &mut Model, descriptions: &[&str]) -> Result<(ArrayD<f32>, Array2<f32>)> {
        let ids = descriptions.iter().map(|d| self.tokenize(d)).collect::<Result<Vec<_>>>()?;
        let l = ids.iter().map(Vec::len).max().unwrap_or(1);
        let mut input = Array2::from_elem((ids.len(), l), self.pad_id as f32);
        let mut mask = Array2::zeros((ids.len(), l));
        for (b, row) in ids.iter().enumerate() {
            for (j, &id) in row.iter().enumerate() {
                input[[b, j]] = id as f32;
                mask[[b, j]] = 1.0;
            }
        }
        let inputs = vec![("input_ids".into(), input.into_dyn()), ("attention_mask".into(), mask.clone().into_dyn())];
        let features = take(model.run(TEXT, inputs)?, "text_features")?;
        Ok((features, mask))
    }

    /// Draws for `items` latent-frame counts from `seed`: standard normal
    /// noise (SplitMix64, Box–Muller) and message bits (a second stream).
    pub(crate) fn draw(&self, frames: usize, seed: u64) -> Draws {
        let mut g = SplitMix64::new(seed);
        let noise = (0..frames * 2 * self.c).map(|_| g.normal() as f32).collect();
        let mut g = SplitMix64::new(seed ^ 0x5741_5445_524D_4152); // "WATERMAR"
        let message = (0..2 * self.p.watermark_bits).map(|_| (g.next_u64() >> 63) as f32).collect();
        Draws { noise, message }
    }

    /// Checks draws for `items` inputs of `frames` latent frames each: noise
    /// [items, frames, 2C], finite; message [2 · items, bits] of 0 or 1.
    pub(crate) fn check_draws(&self, d: &Draws, items: usize, frames: usize) -> Result<()> {
        let (n, m) = (items * frames * 2 * self.c, 2 * items * self.p.watermark_bits);
        let lead = if items == 1 { String::new() } else { format!("{items}, ") };
        if d.noise.len() != n {
            return Err(Error::invalid(
                "ODE noise",
                format!(
                    "[{lead}{frames}, {}] = {n} values (the input's latent frames, ceil(samples / {}), by 2C)",
                    2 * self.c,
                    self.p.hop_length
                ),
                format!("{} values", d.noise.len()),
            ));
        }
        if let Some(x) = d.noise.iter().find(|x| !x.is_finite()) {
            return Err(Error::invalid("ODE noise", "finite values", x));
        }
        if d.message.len() != m {
            return Err(Error::invalid(
                "watermark message",
                format!("[{}, {}] = {m} bits (target, residual)", 2 * items, self.p.watermark_bits),
                format!("{} values", d.message.len()),
            ));
        }
        if let Some(x) = d.message.iter().find(|x| **x != 0.0 && **x != 1.0) {
            return Err(Error::invalid("watermark message", "bits, 0 or 1", x));
        }
        Ok(())
    }

    /// The reference's `separate()` on a batch: `text` from [`Self::encode_text`]
    /// (one row per item), `noise` [B, T, 2C] with T the batch's frames,
    /// `message` [2B, bits]. Returns each item's target and residual, cut to
    /// its whole frames. `count` reports and cancels per velocity evaluation.
    pub(crate) fn run_batch(
        &self,
        model: &mut Model,
        audio: &[&[f32]],
        text: &(ArrayD<f32>, Array2<f32>),
        noise: &[f32],
        message: &[f32],
        count: &mut dyn FnMut() -> Result<()>,
    ) -> Result<Vec<[Vec<f32>; 2]>> {
        let (hop, c, b) = (self.p.hop_length, self.c, audio.len());
        let longest = audio.iter().map(|a| a.len()).max().unwrap_or(0);
        if longest == 0 {
            return Err(Error::Empty { what: "input audio".into() });
        }
        let t = self.frames(longest);
        let padded = t * hop;
        // Zeros up to the longest, then reflect to whole hops (F.pad "reflect" on the batch).
        let mut wav = Array3::<f32>::zeros((b, 1, padded));
        for (i, a) in audio.iter().enumerate() {
            let mut row = wav.index_axis_mut(Axis(0), i);
            let mut row = row.index_axis_mut(Axis(0), 0);
            let row = row.as_slice_mut().expect("contiguous");
            row[..a.len()].copy_from_slice(a);
            reflect_right(&mut row[..padded], longest);
        }
        let mean = take(model.run(ENCODER, vec![("audio".into(), wav.into_dyn())])?, "latent_mean")?;
        let mean = mean.into_dimensionality::<ndarray::Ix3>().map_err(|e| inference(e.to_string()))?;
        if mean.dim() != (b, c, t) {
            return Err(inference(format!("the codec encoder gave {:?}, expected {:?}", mean.dim(), (b, c, t))));
        }
        // [B, T, 2C]: the mean, transposed, twice.
        let mut features = Array3::<f32>::zeros((b, t, 2 * c));
        for ((i, ch, f), &v) in mean.indexed_iter() {
            features[[i, f, ch]] = v;
            features[[i, f, c + ch]] = v;
        }
        let mut audio_mask = Array2::<f32>::zeros((b, t));
        let mut anchors = Array2::<f32>::from_elem((b, t), self.p.pad_anchor as f32);
        for (i, a) in audio.iter().enumerate() {
            for f in 0..self.frames(a.len()) {
                audio_mask[[i, f]] = 1.0;
                anchors[[i, f]] = 0.0; // <null>: no span
            }
        }
        if noise.len() != b * t * 2 * c || message.len() != 2 * b * self.p.watermark_bits {
            return Err(Error::invalid(
                "ODE noise and message",
                format!("[{b}, {t}, {}] and [{}, {}]", 2 * c, 2 * b, self.p.watermark_bits),
                format!("{} and {} values", noise.len(), message.len()),
            ));
        }
        let mut y = Array3::from_shape_vec((b, t, 2 * c), noise.to_vec()).expect("checked length");
        let mut f = |time: f32, state: &Array3<f32>| -> Result<Array3<f32>> {
            count()?;
            let inputs = vec![
                ("noisy".into(), state.clone().into_dyn()),
                ("time".into(), Array1::from_elem(b, time).into_dyn()),
                ("audio_features".into(), features.clone().into_dyn()),
                ("text_features".into(), text.0.clone()),
                ("text_mask".into(), text.1.clone().into_dyn()),
                ("audio_mask".into(), audio_mask.clone().into_dyn()),
                ("anchor_ids".into(), anchors.clone().into_dyn()),
            ];
            let v = take(model.run(VELOCITY, inputs)?, "velocity")?;
            let v = v.into_dimensionality::<ndarray::Ix3>().map_err(|e| inference(e.to_string()))?;
            if v.dim() != state.dim() {
                return Err(inference(format!("the velocity has shape {:?}, the state {:?}", v.dim(), state.dim())));
            }
            Ok(v)
        };
        // torchdiffeq's fixed-grid midpoint: grid t_n = n·h, h = 1/steps.
        let steps = self.p.ode_steps;
        let h = 1.0f32 / steps as f32;
        for n in 0..steps {
            let t0 = n as f32 * h;
            let k1 = f(t0, &y)?;
            let half = 0.5 * h;
            let mid = &y + &(k1 * half);
            let k2 = f(t0 + half, &mid)?;
            y = &y + &(k2 * h);
        }
        // [2B, C, T]: item i's target (channels 0..C) then residual (C..2C).
        let mut latent = Array3::<f32>::zeros((2 * b, c, t));
        for ((i, f, ch), &v) in y.indexed_iter() {
            latent[[2 * i + ch / c, ch % c, f]] = v;
        }
        // One latent at a time: the decoder's activations at the output rate
        // are the pipeline's largest (each row is independent of the others).
        let bits = self.p.watermark_bits;
        let mut rows = Vec::with_capacity(2 * b);
        for r in 0..2 * b {
            let one = latent.slice(ndarray::s![r..r + 1, .., ..]).to_owned();
            let msg =
                Array2::from_shape_vec((1, bits), message[r * bits..(r + 1) * bits].to_vec()).expect("checked length");
            let out = take(
                model.run(DECODER, vec![("latent".into(), one.into_dyn()), ("message".into(), msg.into_dyn())])?,
                "audio",
            )?;
            if out.shape() != [1, 1, padded] {
                return Err(inference(format!(
                    "the codec decoder gave {:?}, expected {:?}",
                    out.shape(),
                    [1, 1, padded]
                )));
            }
            if out.iter().any(|x| !x.is_finite()) {
                return Err(inference("the codec decoder gave NaN or infinite samples".into()));
            }
            rows.push(out.iter().copied().collect::<Vec<f32>>());
        }
        let mut rows = rows.into_iter();
        Ok(audio
            .iter()
            .map(|a| {
                let keep = self.frames(a.len()) * hop;
                let mut t = rows.next().expect("two rows per item");
                let mut r = rows.next().expect("two rows per item");
                t.truncate(keep);
                r.truncate(keep);
                [t, r]
            })
            .collect())
    }

    /// One mono input, chunked as the module docs say; outputs have its length.
    pub(crate) fn separate(
        &self,
        model: &mut Model,
        mono: &[f32],
        description: &str,
        draws: &Draws,
        segment_secs: Option<f64>,
        opts: &SeparateOptions<'_>,
    ) -> Result<[Vec<f32>; 2]> {
        let (hop, c) = (self.p.hop_length, self.c);
        let frames = self.frames(mono.len());
        self.check_draws(draws, 1, frames)?;
        let text = self.encode_text(model, &[description])?;
        let fade = self.p.crossfade_samples / hop;
        let seg = match segment_secs {
            None => model.manifest().segment_samples / hop,
            Some(s) => {
                let seg = (s * model.manifest().sample_rate as f64 / hop as f64).round() as usize;
                if seg <= fade {
                    return Err(Error::invalid(
                        "segment_secs",
                        format!(
                            "longer than the cross-fade, {} s",
                            (fade * hop) as f64 / model.manifest().sample_rate as f64
                        ),
                        s,
                    ));
                }
                seg
            }
        };
        let step = seg - fade;
        let mut starts = vec![0usize];
        while starts.last().unwrap() + seg < frames {
            starts.push(starts.last().unwrap() + step);
        }
        let mut evals = Evals::new(opts, (starts.len() * 2 * self.p.ode_steps) as u64);
        let mut out = [vec![0.0f32; mono.len()], vec![0.0f32; mono.len()]];
        for (k, &s) in starts.iter().enumerate() {
            let a = s * hop;
            let b = ((s + seg) * hop).min(mono.len());
            let len_frames = self.frames(b - a);
            let noise = &draws.noise[s * 2 * c..(s + len_frames) * 2 * c];
            let [target, residual] = self
                .run_batch(model, &[&mono[a..b]], &text, noise, &draws.message, &mut || evals.tick())?
                .pop()
                .expect("one item");
            // The first `fade` frames of every chunk but the first blend into the previous one.
            let blend = if k == 0 { 0 } else { (fade * hop).min(b - a) };
            for (o, src) in out.iter_mut().zip([target, residual]) {
                for j in 0..b - a {
                    let v = src[j];
                    if j < blend {
                        let w = (j as f32 + 0.5) / blend as f32;
                        o[a + j] = o[a + j] * (1.0 - w) + v * w;
                    } else {
                        o[a + j] = v;
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Progress per velocity evaluation, and the cancellation check before each.
pub(crate) struct Evals<'o, 'a> {
    opts: &'o SeparateOptions<'a>,
    done: u64,
    total: u64,
}

impl<'o, 'a> Evals<'o, 'a> {
    pub(crate) fn new(opts: &'o SeparateOptions<'a>, total: u64) -> Self {
        opts.report(Stage::Separate, 0, total);
        Self { opts, done: 0, total }
    }
    pub(crate) fn tick(&mut self) -> Result<()> {
        self.opts.check_cancel()?;
        self.done += 1;
        self.opts.report(Stage::Separate, self.done, self.total);
        Ok(())
    }
}

/// The stereo (or wider) policy: the model separates the mono downmix; its
/// target and residual become a soft mask, `|T|² / (|T|² + |R|²)` per STFT
/// bin (2048 points, hop 512 at 48 kHz), applied to each input channel. Each
/// channel's target and residual then sum to that channel exactly and keep
/// its place in the stereo image, at the cost of one model run rather than
/// one per channel. A mono input gets the model's own output instead.
pub(crate) fn spread(channels: &[Vec<f32>], target: &[f32], residual: &[f32]) -> Result<[Vec<Vec<f32>>; 2]> {
    use crate::stft::{Stft, StftConfig};
    let mut stft = Stft::new(StftConfig::librosa(2048, 512))?;
    let (t, r) = (stft.forward(target)?, stft.forward(residual)?);
    let mask: Vec<f32> = t
        .data
        .iter()
        .zip(&r.data)
        .map(|(a, b)| {
            let (pa, pb) = (a.norm_sqr(), b.norm_sqr());
            if pa + pb > 0.0 { pa / (pa + pb) } else { 0.5 }
        })
        .collect();
    drop((t, r));
    let (mut targets, mut residuals) = (Vec::new(), Vec::new());
    for x in channels {
        let mut spec = stft.forward(x)?;
        spec.data.iter_mut().zip(&mask).for_each(|(v, m)| *v *= *m);
        let tc = stft.inverse(&spec, Some(x.len()))?;
        residuals.push(x.iter().zip(&tc).map(|(a, b)| a - b).collect());
        targets.push(tc);
    }
    Ok([targets, residuals])
}

/// Mirrors `row[..len]` into `row[len..]` as torch's reflect padding does
/// (the edge sample not repeated), reflecting again when the padding is
/// longer than the signal (where torch refuses); a single sample repeats.
fn reflect_right(row: &mut [f32], len: usize) {
    if len == 0 {
        return;
    }
    let period = 2 * (len - 1);
    for j in len..row.len() {
        row[j] = if period == 0 {
            row[0]
        } else {
            let k = j % period;
            row[if k < len { k } else { period - k }]
        };
    }
}

fn inference(detail: String) -> Error {
    Error::Inference { detail }
}

/// The output `name` of a graph run.
fn take(outs: Vec<(String, ArrayD<f32>)>, name: &str) -> Result<ArrayD<f32>> {
    outs.into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, a)| a)
        .ok_or_else(|| inference(format!("the graph has no output `{name}`")))
}

#[cfg(test)]
mod tests {
    use super::reflect_right;

    #[test]
    fn reflect_matches_torch_and_extends_it() {
        let mut r = [1.0, 2.0, 3.0, 0.0, 0.0];
        reflect_right(&mut r, 3);
        assert_eq!(r, [1.0, 2.0, 3.0, 2.0, 1.0]);
        let mut r = [1.0, 2.0, 0.0, 0.0, 0.0];
        reflect_right(&mut r, 2);
        assert_eq!(r, [1.0, 2.0, 1.0, 2.0, 1.0]);
        let mut r = [5.0, 0.0, 0.0];
        reflect_right(&mut r, 1);
        assert_eq!(r, [5.0, 5.0, 5.0]);
    }
}
