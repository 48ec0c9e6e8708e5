//! trybuild UI tests: every rule of `#[refresh_endpoint]` has a `compile_fail`
//! case with its committed `.stderr`; `pass` cases check hygiene under
//! `#![deny(warnings)]`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/*.rs");
    t.pass("ui/pass/*.rs");
}
