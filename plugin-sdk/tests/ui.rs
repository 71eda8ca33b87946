//! The attribute macros' compile errors point at the wrong token and say
//! what is expected (checked with trybuild against `tests/ui/*.stderr`).

#[test]
fn wrong_signatures_are_reported() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
