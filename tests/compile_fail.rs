//! Every mistake `#[derive(Model)]` reports, with its message and span.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
