//! Ensembles: several separators run on one input, their stems matched by
//! name and combined, with the algorithms and per-model weights of
//! audio-separator 0.47's `Ensembler` (`audio_separator/separator/ensembler.py`).
//!
//! | algorithm | per channel |
//! |---|---|
//! | `avg_wave` | the weighted mean of the waveforms |
//! | `median_wave` | the median sample (even counts: the mean of the middle two) |
//! | `min_wave`, `max_wave` | the sample of smallest/largest magnitude (ties: the first model) |
//! | `avg_fft` | the weighted mean of the spectrograms, inverted |
//! | `median_fft` | the medians of the real and imaginary parts, inverted |
//! | `min_fft`, `max_fft` | the bin of smallest/largest magnitude (ties: the first model), inverted |
//! | `uvr_max_spec`, `uvr_min_spec` | UVR's running selection: a later model's bin wins when its magnitude is at least (at most) the choice so far |
//! | `ensemble_wav` | the whole channel of the model whose channel has the smallest mean magnitude |
//!
//! Spectrograms are librosa's (`n_fft` 2048, hop 1024, periodic Hann, zero
//! padding). Inputs of different lengths are zero-padded to the longest.
//! Weights apply to `avg_wave` and `avg_fft`.
//!
//! Where audio-separator differs, and why splitsound does not follow:
//! - it ensembles the stems it wrote to 16-bit files and read back (peak-limited,
//!   quantised); splitsound ensembles the separators' float output;
//! - `uvr_*` lose the input's last `len mod 1024` samples there (its inverse
//!   STFT has no length); here they are zeros, so every stem keeps the input's length;
//! - weights of the wrong count, not finite, summing to zero, or given to an
//!   algorithm that ignores them are a warning there and an error here;
//! - its stem matching maps any name holding "vocal" to Vocals, so a `no_vocals`
//!   stem joins the vocals; here a name that negates ("no …", "no_…") is not the vocals.

use crate::audio::AudioBuffer;
use crate::error::{Error, Result};
use crate::separator::{SeparateOptions, Separator, Stems};
use crate::stft::{Spectrogram, Stft, StftConfig};
use realfft::num_complex::Complex32;

/// How matched stems are combined (audio-separator's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnsembleAlgorithm {
    #[default]
    AvgWave,
    MedianWave,
    MinWave,
    MaxWave,
    AvgFft,
    MedianFft,
    MinFft,
    MaxFft,
    UvrMaxSpec,
    UvrMinSpec,
    EnsembleWav,
}

impl EnsembleAlgorithm {
    pub const ALL: [EnsembleAlgorithm; 11] = [
        Self::AvgWave,
        Self::MedianWave,
        Self::MinWave,
        Self::MaxWave,
        Self::AvgFft,
        Self::MedianFft,
        Self::MinFft,
        Self::MaxFft,
        Self::UvrMaxSpec,
        Self::UvrMinSpec,
        Self::EnsembleWav,
    ];

    /// audio-separator's name (`avg_wave`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::AvgWave => "avg_wave",
            Self::MedianWave => "median_wave",
            Self::MinWave => "min_wave",
            Self::MaxWave => "max_wave",
            Self::AvgFft => "avg_fft",
            Self::MedianFft => "median_fft",
            Self::MinFft => "min_fft",
            Self::MaxFft => "max_fft",
            Self::UvrMaxSpec => "uvr_max_spec",
            Self::UvrMinSpec => "uvr_min_spec",
            Self::EnsembleWav => "ensemble_wav",
        }
    }

    /// Whether per-model weights change its result.
    pub fn weighted(self) -> bool {
        matches!(self, Self::AvgWave | Self::AvgFft)
    }
}

impl std::fmt::Display for EnsembleAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for EnsembleAlgorithm {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let table: Vec<(&str, Self)> = Self::ALL.iter().map(|&a| (a.name(), a)).collect();
        Error::parse_name("ensemble algorithm", s, &table)
    }
}

/// Checks weights for `n` models: as many, finite, not summing to zero, and
/// only for an algorithm that uses them (unless all equal).
pub fn check_weights(algorithm: EnsembleAlgorithm, weights: &[f64], n: usize) -> Result<()> {
    if weights.len() != n {
        return Err(Error::invalid("weights", format!("one per model ({n})"), weights.len()));
    }
    let sum: f64 = weights.iter().sum();
    if weights.iter().any(|w| !w.is_finite()) || !sum.is_finite() || sum == 0.0 {
        return Err(Error::invalid("weights", "finite, not summing to zero", format!("{weights:?}")));
    }
    if !algorithm.weighted() && weights.iter().any(|&w| w != weights[0]) {
        return Err(Error::invalid(
            "weights",
            format!("unset: {algorithm} ignores them (avg_wave and avg_fft use weights)"),
            format!("{weights:?}"),
        ));
    }
    Ok(())
}

/// Combines the same stem from several models (each channels × frames, the
/// same channel count) as audio-separator's `Ensembler.ensemble` does;
/// `weights`, one per input, default to ones. One input is returned as it is.
pub fn ensemble(
    inputs: &[&[Vec<f32>]],
    algorithm: EnsembleAlgorithm,
    weights: Option<&[f64]>,
) -> Result<Vec<Vec<f32>>> {
    let Some(first) = inputs.first() else {
        return Err(Error::Empty { what: "ensemble inputs".into() });
    };
    if inputs.len() == 1 {
        return Ok(first.to_vec());
    }
    let channels = first.len();
    if channels == 0 || inputs.iter().any(|x| x.len() != channels) {
        return Err(Error::invalid(
            "ensemble inputs",
            format!("{channels} channels each, as the first"),
            format!("{:?}", inputs.iter().map(|x| x.len()).collect::<Vec<_>>()),
        ));
    }
    let ones = vec![1.0; inputs.len()];
    let weights = match weights {
        Some(w) => {
            check_weights(algorithm, w, inputs.len())?;
            w
        }
        None => &ones[..],
    };
    let len = inputs.iter().flat_map(|x| x.iter().map(Vec::len)).max().unwrap_or(0);
    // Zero-padded to the longest.
    let sample = |m: usize, c: usize, i: usize| inputs[m][c].get(i).copied().unwrap_or(0.0);
    let n = inputs.len();
    let mut out = vec![vec![0.0f32; len]; channels];
    match algorithm {
        EnsembleAlgorithm::AvgWave => {
            let total: f64 = weights.iter().sum();
            for (c, o) in out.iter_mut().enumerate() {
                for (i, o) in o.iter_mut().enumerate() {
                    // A float32 accumulator of float64 products, then a float64 division (numpy's types).
                    let mut acc = 0.0f32;
                    for (m, &w) in weights.iter().enumerate() {
                        acc = (acc as f64 + sample(m, c, i) as f64 * w) as f32;
                    }
                    *o = (acc as f64 / total) as f32;
                }
            }
        }
        EnsembleAlgorithm::MedianWave => {
            let mut v = vec![0.0f32; n];
            for (c, o) in out.iter_mut().enumerate() {
                for (i, o) in o.iter_mut().enumerate() {
                    v.iter_mut().enumerate().for_each(|(m, v)| *v = sample(m, c, i));
                    *o = median(&mut v);
                }
            }
        }
        EnsembleAlgorithm::MinWave | EnsembleAlgorithm::MaxWave => {
            let max = algorithm == EnsembleAlgorithm::MaxWave;
            for (c, o) in out.iter_mut().enumerate() {
                for (i, o) in o.iter_mut().enumerate() {
                    *o = pick((0..n).map(|m| sample(m, c, i)), |v| v.abs(), max);
                }
            }
        }
        EnsembleAlgorithm::EnsembleWav => {
            for (c, o) in out.iter_mut().enumerate() {
                let mean = |m: usize| inputs[m][c].iter().map(|v| v.abs() as f64).sum::<f64>() / len.max(1) as f64;
                let best = (1..n).fold(0, |b, m| if mean(m) < mean(b) { m } else { b });
                o.iter_mut().enumerate().for_each(|(i, o)| *o = sample(best, c, i));
            }
        }
        _ => {
            let mut stft = Stft::new(StftConfig::librosa(2048, 1024))?;
            let mut padded = Vec::with_capacity(len);
            for (c, o) in out.iter_mut().enumerate() {
                // One channel of one model at a time, zero-padded to the longest.
                let specs = (0..n)
                    .map(|m| {
                        padded.clear();
                        padded.extend((0..len).map(|i| sample(m, c, i)));
                        stft.forward(&padded)
                    })
                    .collect::<Result<Vec<Spectrogram>>>()?;
                let mut mixed = Spectrogram::zeros(specs[0].bins, specs[0].frames);
                combine_spectra(algorithm, &specs, weights, &mut mixed);
                // `*_fft`: the padded length; `uvr_*`: hop · (frames − 1), then zeros to the length.
                let uvr = matches!(algorithm, EnsembleAlgorithm::UvrMaxSpec | EnsembleAlgorithm::UvrMinSpec);
                let mut y = stft.inverse(&mixed, (!uvr).then_some(len))?;
                y.resize(len, 0.0);
                *o = y;
            }
        }
    }
    Ok(out)
}

/// The spectral algorithms, bin by bin.
fn combine_spectra(algorithm: EnsembleAlgorithm, specs: &[Spectrogram], weights: &[f64], out: &mut Spectrogram) {
    let n = specs.len();
    let mut re = vec![0.0f32; n];
    let mut im = vec![0.0f32; n];
    let total: f64 = weights.iter().sum();
    for (k, o) in out.data.iter_mut().enumerate() {
        let at = |m: usize| specs[m].data[k];
        *o = match algorithm {
            EnsembleAlgorithm::AvgFft => {
                // complex64 accumulator of complex128 products, divided in place (numpy's types).
                let mut acc = Complex32::new(0.0, 0.0);
                for (m, &w) in weights.iter().enumerate() {
                    let s = at(m);
                    acc = Complex32::new(
                        (acc.re as f64 + s.re as f64 * w) as f32,
                        (acc.im as f64 + s.im as f64 * w) as f32,
                    );
                }
                Complex32::new((acc.re as f64 / total) as f32, (acc.im as f64 / total) as f32)
            }
            EnsembleAlgorithm::MedianFft => {
                (0..n).for_each(|m| (re[m], im[m]) = (at(m).re, at(m).im));
                Complex32::new(median(&mut re), median(&mut im))
            }
            EnsembleAlgorithm::MinFft | EnsembleAlgorithm::MaxFft => {
                pick((0..n).map(at), |v| v.norm(), algorithm == EnsembleAlgorithm::MaxFft)
            }
            EnsembleAlgorithm::UvrMaxSpec => {
                (1..n).fold(at(0), |acc, m| if at(m).norm() >= acc.norm() { at(m) } else { acc })
            }
            EnsembleAlgorithm::UvrMinSpec => {
                (1..n).fold(at(0), |acc, m| if at(m).norm() <= acc.norm() { at(m) } else { acc })
            }
            _ => unreachable!("a waveform algorithm"),
        };
    }
}

/// `np.median` of float32 values: the middle one, or the mean of the middle two.
fn median(v: &mut [f32]) -> f32 {
    v.sort_by(f32::total_cmp);
    let h = v.len() / 2;
    if v.len() % 2 == 1 { v[h] } else { (v[h - 1] + v[h]) / 2.0 }
}

/// The value of least (or, with `max`, greatest) `key`; ties go to the first, as `np.argmin`'s do.
fn pick<T: Copy>(values: impl Iterator<Item = T>, key: impl Fn(T) -> f32, max: bool) -> T {
    let mut best: Option<(T, f32)> = None;
    for v in values {
        let k = key(v);
        let better = match best {
            None => true,
            Some((_, b)) => {
                if max {
                    k > b
                } else {
                    k < b
                }
            }
        };
        if better {
            best = Some((v, k));
        }
    }
    best.expect("at least one value").0
}

/// audio-separator's canonical name of a stem for matching across models
/// (`Separator._ensemble` and `STEM_NAME_MAP`), lower-cased as splitsound's
/// stems are: any vocals but lead or backing vocals are `vocals`; a two-stem
/// model's `other` beside its vocals is `instrumental`; `inst`, `karaoke` and
/// `no_vocals` are `instrumental`; other names keep their words. A name that
/// negates (`no vocals`) is not the vocals (audio-separator's own rule would
/// make it so).
pub fn canonical_stem(name: &str, model_stems: &[String]) -> String {
    let lower = name.trim().to_lowercase();
    let negated = |s: &str| s.starts_with("no ") || s.starts_with("no_") || s.starts_with("no-");
    let vocal = |s: &str| s.contains("vocal") && !s.contains("lead") && !s.contains("backing") && !negated(s);
    if vocal(&lower) {
        return "vocals".into();
    }
    if lower == "other" && model_stems.len() == 2 && model_stems.iter().any(|s| vocal(&s.to_lowercase())) {
        return "instrumental".into();
    }
    match lower.as_str() {
        "inst" | "karaoke" | "no_vocals" | "no vocals" | "no-vocals" => "instrumental".into(),
        _ => lower.replace('_', " "),
    }
}

/// Separators run one after another on the same input, each stem the
/// [`ensemble`] of the models that produce it (matched by [`canonical_stem`]);
/// a stem only one model produces is that model's, under its own name.
pub struct EnsembleSeparator {
    members: Vec<Box<dyn Separator>>,
    algorithm: EnsembleAlgorithm,
    weights: Option<Vec<f64>>,
    name: String,
    stems: Vec<String>,
    /// For each member, the ensemble stem of each of its stems.
    slots: Vec<Vec<usize>>,
    rate: Option<u32>,
}

impl std::fmt::Debug for EnsembleSeparator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnsembleSeparator")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("weights", &self.weights)
            .field("stems", &self.stems)
            .finish_non_exhaustive()
    }
}

impl EnsembleSeparator {
    /// At least two separators; `weights`, one per separator, for `avg_wave` and `avg_fft`.
    pub fn new(
        members: Vec<Box<dyn Separator>>,
        algorithm: EnsembleAlgorithm,
        weights: Option<Vec<f64>>,
    ) -> Result<Self> {
        if members.len() < 2 {
            return Err(Error::invalid("ensemble", "at least two models", members.len()));
        }
        if let Some(w) = &weights {
            check_weights(algorithm, w, members.len())?;
        }
        let mut stems: Vec<String> = Vec::new();
        // The names the models gave each ensemble stem.
        let mut given: Vec<Vec<String>> = Vec::new();
        let mut slots = Vec::with_capacity(members.len());
        for m in &members {
            let own = m.stems();
            let mut slot = Vec::with_capacity(own.len());
            for s in own {
                let name = canonical_stem(s, own);
                let k = stems.iter().position(|t| *t == name).unwrap_or_else(|| {
                    stems.push(name.clone());
                    given.push(Vec::new());
                    stems.len() - 1
                });
                given[k].push(s.clone());
                if slot.contains(&k) {
                    return Err(Error::invalid(
                        "ensemble",
                        "models whose stems have distinct names",
                        format!("{} has two stems named {name}", m.name()),
                    ));
                }
                slot.push(k);
            }
            slots.push(slot);
        }
        // A stem only one model produces keeps that model's name.
        for (name, g) in stems.iter_mut().zip(&given) {
            if let [only] = &g[..] {
                name.clone_from(only);
            }
        }
        // Each stem's weights are those of the models that produce it: checked
        // here, before anything runs.
        if let Some(w) = &weights {
            for (k, name) in stems.iter().enumerate() {
                let group: Vec<f64> = slots.iter().zip(w).filter(|(s, _)| s.contains(&k)).map(|(_, &w)| w).collect();
                if group.len() > 1 && group.iter().sum::<f64>() == 0.0 {
                    return Err(Error::invalid(
                        "weights",
                        format!("not summing to zero over the models that produce `{name}`"),
                        format!("{group:?}"),
                    ));
                }
            }
        }
        // Their common rate when they share one (audio-separator ensembles at 44.1 kHz).
        let first = members[0].sample_rate();
        let rate = members.iter().all(|m| m.sample_rate() == first).then_some(first).flatten();
        let name = format!(
            "ensemble {} of {}",
            algorithm,
            members.iter().map(|m| m.name().to_string()).collect::<Vec<_>>().join(" + ")
        );
        Ok(Self { members, algorithm, weights, name, stems, slots, rate })
    }

    pub fn algorithm(&self) -> EnsembleAlgorithm {
        self.algorithm
    }
    pub fn members(&self) -> &[Box<dyn Separator>] {
        &self.members
    }
}

impl Separator for EnsembleSeparator {
    fn name(&self) -> &str {
        &self.name
    }
    fn stems(&self) -> &[String] {
        &self.stems
    }
    fn sample_rate(&self) -> Option<u32> {
        self.rate
    }
    fn output_channels(&self, input_channels: usize) -> usize {
        self.members.iter().map(|m| m.output_channels(input_channels)).max().unwrap_or(input_channels)
    }
    fn runs_on(&self) -> String {
        let mut all: Vec<String> = self.members.iter().map(|m| m.runs_on()).collect();
        all.dedup();
        all.join(" + ")
    }

    fn separate_native(&mut self, audio: &AudioBuffer, opts: &SeparateOptions<'_>) -> Result<Stems> {
        // Members whose stems' channels cannot meet (a 5.1 input to a built-in,
        // which keeps it, beside a stereo model) are refused before anything runs.
        let counts: Vec<usize> = self.members.iter().map(|m| m.output_channels(audio.num_channels())).collect();
        let channels = counts.iter().copied().max().unwrap_or(1);
        if counts.iter().any(|&c| c != channels && c != 1) {
            return Err(Error::invalid(
                "ensemble",
                "models whose stems have the same channels (or mono ones)",
                format!("{counts:?} channels for this input"),
            ));
        }
        // For each ensemble stem: (member, its output) in member order.
        let mut groups: Vec<Vec<(usize, AudioBuffer)>> = vec![Vec::new(); self.stems.len()];
        for (m, member) in self.members.iter_mut().enumerate() {
            opts.check_cancel()?;
            let out = member.separate(audio, opts)?;
            for ((_, buf), &k) in out.into_vec().into_iter().zip(&self.slots[m]) {
                groups[k].push((m, buf));
            }
        }
        let mut stems = Vec::with_capacity(self.stems.len());
        for (name, group) in self.stems.iter().zip(groups) {
            opts.check_cancel()?;
            if let [(_, only)] = &group[..] {
                // Only one model has it: its stem, as it is.
                stems.push((name.clone(), only.clone()));
                continue;
            }
            // A mono stem beside stereo ones is duplicated, as audio-separator reads it.
            let chans = group
                .iter()
                .map(|(_, b)| {
                    Ok(if b.num_channels() == channels {
                        b.channels().to_vec()
                    } else {
                        b.to_channels(channels)?.into_channels()
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let inputs: Vec<&[Vec<f32>]> = chans.iter().map(|x| &x[..]).collect();
            // The weights of the models that produce this stem.
            let weights: Option<Vec<f64>> = self.weights.as_ref().map(|w| group.iter().map(|&(m, _)| w[m]).collect());
            let mixed = ensemble(&inputs, self.algorithm, weights.as_deref())?;
            stems.push((name.clone(), AudioBuffer::new(audio.sample_rate(), mixed)?));
        }
        Stems::new(stems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in EnsembleAlgorithm::ALL {
            assert_eq!(a.name().parse::<EnsembleAlgorithm>().unwrap(), a);
        }
        assert!("avg".parse::<EnsembleAlgorithm>().is_err());
    }

    #[test]
    fn canonical_stems_match_across_models() {
        let two = ["vocals".to_string(), "other".to_string()];
        let four = ["drums", "bass", "other", "vocals"].map(String::from);
        assert_eq!(canonical_stem("other", &two), "instrumental");
        assert_eq!(canonical_stem("other", &four), "other");
        assert_eq!(canonical_stem("Vocals", &four), "vocals");
        assert_eq!(canonical_stem("Instrumental", &two), "instrumental");
        assert_eq!(canonical_stem("no_vocals", &two), "instrumental");
        assert_eq!(canonical_stem("lead vocals", &two), "lead vocals");
        assert_eq!(canonical_stem("No Drums", &four), "no drums");
    }

    #[test]
    fn wave_algorithms_on_small_inputs() {
        let a = vec![vec![1.0, -3.0, 0.5]];
        let b = vec![vec![2.0, 1.0, -0.25]];
        let c = vec![vec![-4.0, 2.0]]; // shorter: zero-padded
        let x: [&[Vec<f32>]; 3] = [&a, &b, &c];
        let run = |alg, w: Option<&[f64]>| ensemble(&x, alg, w).unwrap()[0].clone();
        assert_eq!(run(EnsembleAlgorithm::AvgWave, None), [-1.0 / 3.0, 0.0, 0.25 / 3.0]);
        assert_eq!(run(EnsembleAlgorithm::AvgWave, Some(&[2.0, 1.0, 1.0])), [0.0, -0.75, 0.75 / 4.0]);
        assert_eq!(run(EnsembleAlgorithm::MedianWave, None), [1.0, 1.0, 0.0]);
        assert_eq!(run(EnsembleAlgorithm::MinWave, None), [1.0, 1.0, 0.0]);
        assert_eq!(run(EnsembleAlgorithm::MaxWave, None), [-4.0, -3.0, 0.5]);
        // Mean magnitudes 1.5, 1.083, 2: the second model's channel.
        assert_eq!(run(EnsembleAlgorithm::EnsembleWav, None), [2.0, 1.0, -0.25]);
        assert!(ensemble(&x, EnsembleAlgorithm::MedianWave, Some(&[1.0, 2.0, 1.0])).is_err());
        assert!(ensemble(&x, EnsembleAlgorithm::AvgWave, Some(&[1.0, -1.0, 0.0])).is_err());
        assert!(ensemble(&x, EnsembleAlgorithm::AvgWave, Some(&[1.0])).is_err());
    }
}
