//! The README's "Getting started" is `examples/getting_started.rs`, which the build
//! compiles: this keeps the two the same, so the README's code always compiles.

#[test]
fn readme_getting_started_is_the_example() {
    let readme = include_str!("../README.md");
    let example = include_str!("../examples/getting_started.rs");
    let code = &example[example
        .find("use futures::StreamExt;")
        .expect("the example's code")..];
    let marker = "<!-- examples/getting_started.rs -->\n```rust,ignore\n";
    let start = readme
        .find(marker)
        .expect("the README's getting-started block")
        + marker.len();
    let end = start + readme[start..].find("```\n").expect("the block's end");
    assert_eq!(
        &readme[start..end],
        code,
        "README.md's Getting started differs from examples/getting_started.rs: copy one into the other"
    );
}
