//! MQTT 3.1.1 and 5.0 packets: decoding, encoding, topic names and filters. No I/O.
