#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| safe_testkit::fuzzing::letter(data));
