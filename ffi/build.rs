//! Gives the shared library the SONAME C programs record: `libprunus.so.MAJOR`
//! (ffi/build.sh installs `libprunus_ffi.so` as `libprunus.so.MAJOR.MINOR.PATCH`).

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let major = std::env::var("CARGO_PKG_VERSION_MAJOR").expect("set by cargo");
    if os == "linux" || os == "android" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libprunus.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
