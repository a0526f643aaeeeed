use vhs::Model;

#[derive(Model)]
struct Document;

fn main() {}
