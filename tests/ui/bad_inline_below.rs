use vhs::Model;

#[derive(Model)]
struct Document {
    #[vhs(hash_key)]
    pk: String,
    #[large(inline_below = 0)]
    a: Option<String>,
    #[large(inline_below = 500000)]
    b: Option<Vec<u8>>,
    #[large(inline_below = "4096")]
    c: Option<Vec<u8>>,
    #[large(inline_below)]
    d: Option<Vec<u8>>,
    #[large(inline_below = 10, inline_below = 20)]
    e: Option<Vec<u8>>,
}

fn main() {}
