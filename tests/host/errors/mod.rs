//! Every error test in one place: bad input to the public entry points is a typed error naming
//! what is wrong, never a panic, and every error's message is true of the input.

mod backward;
mod bad_input;
mod messages;
mod reference;
