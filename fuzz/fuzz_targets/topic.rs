//! Topic filter and topic name parsing, and matching between them.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| codec_fuzz::topic(data));
