//! Status codes, the per-thread last error, and the panic boundary.

use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{AssertUnwindSafe, catch_unwind};

use splitsound_core::realtime::ProcessError;
use splitsound_core::{Error, ErrorKind};

use crate::strings::copy_str_unrecorded;

/// What a call did. The numbers are stable: a code never changes meaning, and a
/// retired code stays reserved. Codes 1–99 are about the call itself, 100–199
/// about names and arguments, 200–299 about input audio, 300–399 about neural
/// models, 400–499 about processing, 500–599 about the real-time API.
#[allow(non_camel_case_types)]
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum splitsound_status {
    /// Success.
    Ok = 0,
    /// A pointer that must not be NULL was NULL.
    NullArgument = 1,
    /// An argument is outside what the function accepts (the last error says which).
    InvalidArgument = 2,
    /// A caller buffer is too small; the function's size out-parameter holds the size needed.
    BufferTooSmall = 3,
    /// A string argument is not UTF-8.
    InvalidUtf8 = 4,
    /// splitsound hit an internal error (a bug; please report it). Free the handle involved.
    Panic = 5,
    /// An error newer than this header; the last error describes it.
    Other = 6,
    /// A sample rate outside 8 kHz–192 kHz.
    UnsupportedSampleRate = 100,
    /// No built-in of that name, and no model package at that path.
    UnknownSeparator = 101,
    /// A stem the separator does not produce.
    UnknownStem = 102,
    /// A description that names none of the separator's stems.
    UnresolvedQuery = 103,
    /// No registry lists a model of that name.
    UnknownModel = 104,
    /// Reading or writing a file failed.
    Io = 200,
    /// No bytes, or no audio frames.
    Empty = 201,
    /// Not a container or codec splitsound recognises.
    UnrecognizedFormat = 202,
    /// A recognised but unsupported codec or feature.
    Unsupported = 203,
    /// The container has no audio track.
    NoAudioTrack = 204,
    /// The stream ends before the length its header declares.
    Truncated = 205,
    /// Malformed audio data.
    Corrupt = 206,
    /// The input exceeds a configured limit.
    TooLarge = 207,
    /// A sample is NaN or infinite.
    NonFinite = 208,
    /// A channel layout that does not fit the operation.
    InvalidChannels = 209,
    /// The ONNX Runtime library could not be found or loaded.
    RuntimeUnavailable = 300,
    /// A malformed model package.
    Model = 301,
    /// A required execution provider cannot run here.
    ProviderUnavailable = 302,
    /// ONNX Runtime failed while running a model.
    Inference = 303,
    /// A malformed registry document.
    Registry = 304,
    /// A listed model that is not in the cache (`splitsound_model_pull` fetches it).
    ModelNotInstalled = 305,
    /// Fetching a model failed (the server refused, or kept failing).
    Download = 306,
    /// A model's file does not match its registry's SHA-256 (nothing was installed).
    Checksum = 307,
    /// Cancelled through a `splitsound_cancel`.
    Cancelled = 400,
    /// Encoding an output file failed.
    Encode = 401,
    /// Resampling failed.
    Resample = 402,
    /// `splitsound_rt_process` before a successful `splitsound_rt_prepare`.
    NotPrepared = 500,
    /// A block longer than the prepared maximum.
    BlockTooLarge = 501,
    /// Input or output buffer counts other than the prepared channels (× stems).
    ChannelMismatch = 502,
}

/// A failed call: its status and the message for `splitsound_last_error`.
#[derive(Debug)]
pub(crate) struct Failure {
    pub status: splitsound_status,
    pub message: String,
}

impl Failure {
    pub fn new(status: splitsound_status, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }
    pub fn null(name: &str) -> Self {
        Self::new(splitsound_status::NullArgument, format!("`{name}` is NULL"))
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(splitsound_status::InvalidArgument, message)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        use splitsound_status as S;
        let status = match &e {
            Error::InvalidArgument { .. } => S::InvalidArgument,
            Error::UnsupportedSampleRate { .. } => S::UnsupportedSampleRate,
            Error::UnknownSeparator { .. } => S::UnknownSeparator,
            Error::UnknownStem { .. } => S::UnknownStem,
            Error::UnresolvedQuery { .. } => S::UnresolvedQuery,
            Error::Io { .. } => S::Io,
            Error::Empty { .. } => S::Empty,
            Error::UnrecognizedFormat { .. } => S::UnrecognizedFormat,
            Error::Unsupported { .. } => S::Unsupported,
            Error::NoAudioTrack => S::NoAudioTrack,
            Error::Truncated { .. } => S::Truncated,
            Error::Corrupt { .. } => S::Corrupt,
            Error::TooLarge { .. } => S::TooLarge,
            Error::NonFinite { .. } => S::NonFinite,
            Error::InvalidChannels { .. } => S::InvalidChannels,
            Error::RuntimeUnavailable { .. } => S::RuntimeUnavailable,
            Error::Model { .. } => S::Model,
            Error::ProviderUnavailable { .. } => S::ProviderUnavailable,
            Error::Inference { .. } => S::Inference,
            Error::UnknownModel { .. } => S::UnknownModel,
            Error::Registry { .. } => S::Registry,
            Error::ModelNotInstalled { .. } => S::ModelNotInstalled,
            Error::Download { .. } => S::Download,
            Error::Checksum { .. } => S::Checksum,
            Error::Internal { .. } => S::Panic,
            Error::Cancelled => S::Cancelled,
            Error::Encode { .. } => S::Encode,
            Error::Resample { .. } => S::Resample,
            // A variant newer than this table: its kind's status.
            e => match e.kind() {
                ErrorKind::InvalidArgument => S::InvalidArgument,
                ErrorKind::File => S::Io,
                ErrorKind::Decode => S::Corrupt,
                ErrorKind::UnsupportedFormat => S::Unsupported,
                ErrorKind::Model => S::Model,
                ErrorKind::ModelNotInstalled => S::ModelNotInstalled,
                ErrorKind::Download => S::Download,
                ErrorKind::RuntimeUnavailable => S::RuntimeUnavailable,
                ErrorKind::Cancelled => S::Cancelled,
                ErrorKind::Output => S::Encode,
                ErrorKind::Internal => S::Panic,
                _ => S::Other,
            },
        };
        Self { status, message: e.to_string() }
    }
}

/// The status of a refused real-time block (no message: that would allocate).
pub(crate) fn process_status(e: ProcessError) -> splitsound_status {
    match e {
        ProcessError::NotPrepared => splitsound_status::NotPrepared,
        ProcessError::BlockTooLarge { .. } => splitsound_status::BlockTooLarge,
        ProcessError::InputChannels { .. } | ProcessError::OutputCount { .. } => splitsound_status::ChannelMismatch,
        ProcessError::Lengths => splitsound_status::InvalidArgument,
        _ => splitsound_status::Other,
    }
}

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

fn record(message: String) {
    LAST_ERROR.with(|l| *l.borrow_mut() = message);
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panic")
}

/// Runs the body of an entry point: its error becomes a status and the thread's
/// last error, and a panic becomes `Panic` instead of unwinding into C.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Failure>) -> splitsound_status {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => splitsound_status::Ok,
        Ok(Err(f)) => {
            record(f.message);
            f.status
        }
        Err(payload) => {
            record(format!("internal error in splitsound (please report it): {}", panic_text(&*payload)));
            splitsound_status::Panic
        }
    }
}

/// [`guard`] for the real-time calls: nothing is recorded (that would
/// allocate); the status alone says what went wrong.
pub(crate) fn guard_rt(body: impl FnOnce() -> splitsound_status) -> splitsound_status {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(splitsound_status::Panic)
}

/// A panic-free `void` entry point (the `_free` functions): a panic is dropped
/// silently, since there is no status to report it with.
pub(crate) fn guard_void(body: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(body));
}

/// Copies the message of the last failed call on this thread into `buf` (with
/// a terminating NUL) and its length without the NUL into `*out_n` (`out_n` may
/// be NULL). The message is empty when no call on this thread has failed. The
/// real-time calls (`splitsound_rt_process`, `splitsound_rt_reset`,
/// `splitsound_rt_get_stats`) never record one.
///
/// Returns `BUFFER_TOO_SMALL` with `*out_n` = the size needed, NUL included,
/// when `len` is too small (`buf` may be NULL with `len` 0 to ask). Calling
/// this function does not change the last error.
///
/// Thread safety: any thread; each thread has its own last error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn splitsound_last_error(buf: *mut c_char, len: usize, out_n: *mut usize) -> splitsound_status {
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the caller passes a buffer of `len` bytes or NULL, and `out_n` NULL or valid.
        LAST_ERROR.with(|l| unsafe { copy_str_unrecorded(&l.borrow(), buf, len, out_n) })
    }))
    .unwrap_or(splitsound_status::Panic)
}

/// The name of a status code (`"SPLITSOUND_STATUS_NULL_ARGUMENT"`), or
/// `"SPLITSOUND_STATUS_UNKNOWN"` for a number that is none. Static; never freed.
///
/// Thread safety: any thread; real-time safe.
#[unsafe(no_mangle)]
pub extern "C" fn splitsound_status_name(status: u32) -> *const c_char {
    use splitsound_status as S;
    let all = [
        (S::Ok, c"SPLITSOUND_STATUS_OK"),
        (S::NullArgument, c"SPLITSOUND_STATUS_NULL_ARGUMENT"),
        (S::InvalidArgument, c"SPLITSOUND_STATUS_INVALID_ARGUMENT"),
        (S::BufferTooSmall, c"SPLITSOUND_STATUS_BUFFER_TOO_SMALL"),
        (S::InvalidUtf8, c"SPLITSOUND_STATUS_INVALID_UTF8"),
        (S::Panic, c"SPLITSOUND_STATUS_PANIC"),
        (S::Other, c"SPLITSOUND_STATUS_OTHER"),
        (S::UnsupportedSampleRate, c"SPLITSOUND_STATUS_UNSUPPORTED_SAMPLE_RATE"),
        (S::UnknownSeparator, c"SPLITSOUND_STATUS_UNKNOWN_SEPARATOR"),
        (S::UnknownStem, c"SPLITSOUND_STATUS_UNKNOWN_STEM"),
        (S::UnresolvedQuery, c"SPLITSOUND_STATUS_UNRESOLVED_QUERY"),
        (S::UnknownModel, c"SPLITSOUND_STATUS_UNKNOWN_MODEL"),
        (S::Io, c"SPLITSOUND_STATUS_IO"),
        (S::Empty, c"SPLITSOUND_STATUS_EMPTY"),
        (S::UnrecognizedFormat, c"SPLITSOUND_STATUS_UNRECOGNIZED_FORMAT"),
        (S::Unsupported, c"SPLITSOUND_STATUS_UNSUPPORTED"),
        (S::NoAudioTrack, c"SPLITSOUND_STATUS_NO_AUDIO_TRACK"),
        (S::Truncated, c"SPLITSOUND_STATUS_TRUNCATED"),
        (S::Corrupt, c"SPLITSOUND_STATUS_CORRUPT"),
        (S::TooLarge, c"SPLITSOUND_STATUS_TOO_LARGE"),
        (S::NonFinite, c"SPLITSOUND_STATUS_NON_FINITE"),
        (S::InvalidChannels, c"SPLITSOUND_STATUS_INVALID_CHANNELS"),
        (S::RuntimeUnavailable, c"SPLITSOUND_STATUS_RUNTIME_UNAVAILABLE"),
        (S::Model, c"SPLITSOUND_STATUS_MODEL"),
        (S::ProviderUnavailable, c"SPLITSOUND_STATUS_PROVIDER_UNAVAILABLE"),
        (S::Inference, c"SPLITSOUND_STATUS_INFERENCE"),
        (S::Registry, c"SPLITSOUND_STATUS_REGISTRY"),
        (S::ModelNotInstalled, c"SPLITSOUND_STATUS_MODEL_NOT_INSTALLED"),
        (S::Download, c"SPLITSOUND_STATUS_DOWNLOAD"),
        (S::Checksum, c"SPLITSOUND_STATUS_CHECKSUM"),
        (S::Cancelled, c"SPLITSOUND_STATUS_CANCELLED"),
        (S::Encode, c"SPLITSOUND_STATUS_ENCODE"),
        (S::Resample, c"SPLITSOUND_STATUS_RESAMPLE"),
        (S::NotPrepared, c"SPLITSOUND_STATUS_NOT_PREPARED"),
        (S::BlockTooLarge, c"SPLITSOUND_STATUS_BLOCK_TOO_LARGE"),
        (S::ChannelMismatch, c"SPLITSOUND_STATUS_CHANNEL_MISMATCH"),
    ];
    all.iter().find(|(s, _)| *s as u32 == status).map_or(c"SPLITSOUND_STATUS_UNKNOWN", |(_, n)| n).as_ptr()
}
