//! The crate's errors as candle errors.
//!
//! Every failure of the op is a [`crate::Error`] (bad shapes, dtypes, head dims, plans, views;
//! CUDA errors), carried into candle as `candle_core::Error::Wrapped` so that its message is the
//! crate's own, word for word.

/// `e` as a candle error with the crate's message.
pub(crate) fn to_candle(e: crate::Error) -> candle_core::Error {
    candle_core::Error::wrap(e)
}

/// An [`crate::Error::InvalidArgument`] naming `what`, as a candle error.
pub(crate) fn invalid(what: &'static str, detail: String) -> candle_core::Error {
    to_candle(crate::Error::InvalidArgument { what, detail })
}

/// `?` on the crate's results (a [`crate::Batch`], a [`crate::Plan`], a [`crate::VisEnd`]) in
/// code returning `candle_core::Result`: the crate's error, carried as
/// `candle_core::Error::Wrapped` with its message.
impl From<crate::Error> for candle_core::Error {
    fn from(e: crate::Error) -> Self {
        to_candle(e)
    }
}
