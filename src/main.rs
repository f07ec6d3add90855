fn main() {
    std::process::exit(hoist::cli::run());
}
