#![doc = include_str!("../README.md")]
#![deny(unsafe_code)] // deny, not forbid: ndarray's `s!` macro allows it locally
#![warn(missing_debug_implementations)]

mod audio;
pub mod builtin;
mod decode;
pub mod ensemble;
mod error;
pub mod eval;
mod job;
mod load;
pub mod model;
mod mp4edit;
mod query;
pub mod realtime;
#[cfg(feature = "download")]
pub mod registry;
mod resample;
mod separator;
mod stft;
pub mod stream;
mod write;

pub use audio::{
    AudioBuffer, AudioSpec, MAX_SAMPLE_RATE, MIN_SAMPLE_RATE, check_sample_rate, deinterleave, interleave,
    interleave_into,
};
pub use decode::{DecodeOptions, MediaInfo, StreamDecoder, decode_bytes, decode_file, probe, probe_bytes};
pub use error::{Error, ErrorKind, Limit, Result};
pub use job::{FileJobOptions, FileJobReport, StemSelection, WrittenStem, check_names, select_stems, separate_file};
pub use load::{EnsembleSpec, is_model_package, load_ensemble, load_separator};
pub use query::{
    MAX_DESCRIPTION_CHARS, QueryMode, QueryPlan, QueryResolution, TextQuery, plan_query, resolve_query, text_query,
};
pub use resample::{StreamResampler, resample, resampled_len};
pub use separator::{CancelToken, Progress, SeparateOptions, Separator, Stage, Stems};
pub use stft::{PadMode, Spectrogram, Stft, StftConfig, WindowKind};
pub use write::{
    ClipMode, OutputFormat, PendingFile, SampleEncoding, StemWriter, WriteOptions, apply_clip, encode, write_file,
};

/// Complex sample type used by [`Spectrogram`].
pub use realfft::num_complex::Complex32;

/// Version of this crate.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
