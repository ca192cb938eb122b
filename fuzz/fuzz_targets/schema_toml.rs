//! Arbitrary text as a schema file: it must parse or fail with an error, never panic, and a
//! schema that parses must survive a round trip through its TOML form.
#![no_main]

use dmtl_data::Schema;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(schema) = Schema::from_toml_str(&text, "fuzz.toml") {
        let again = Schema::from_toml_str(&schema.to_toml_string(), "round trip").unwrap();
        assert_eq!(again, schema);
    }
});
