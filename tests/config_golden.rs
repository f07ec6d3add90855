//! `hoist config` on one fixture per Compose key group: the printed model is the
//! specification of how each key is read and normalized. Fixtures live in
//! `tests/fixtures/config/<name>/` (compose files, optional `args` and `env`) with the
//! expected output in `expected.yaml`; each can be run by hand with `hoist config` there.

mod common;

#[test]
fn every_key_group_normalizes_as_expected() {
    common::run_fixture_group("config", &["config"], true, "expected.yaml");
}

/// Every bad input exits with status 1 and its exact message on stderr (`expected.txt`).
#[test]
fn bad_inputs_give_exact_messages() {
    common::run_fixture_group("bad", &["config", "-q"], false, "expected.txt");
}
