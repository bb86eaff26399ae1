//! MQTT 5.0 decoding: any bytes, as a stream of packets.
#![no_main]

use codec::ProtocolVersion;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| codec_fuzz::decode_stream(data, ProtocolVersion::V5));
