//! `pow`, the one function of the C math library keel used, from Rust's `libm`.
//!
//! The registry client's async runtime (tokio's multi-thread scheduler) calls `pow` to
//! average how long its tasks take. Nothing else in keel needs `libm.so`, but for that
//! one call every start of the runtime loaded it: the dynamic loader maps it and runs
//! its `IFUNC` resolvers (which pick each function's variant for this CPU), 0.3 MB of
//! resident memory at every `run`, which pulls nothing. Defined here, the call is
//! resolved inside the binary, and the linker (`--as-needed`) leaves `libm.so` out.

/// `pow(3)`: `x` raised to the power `y`.
#[unsafe(no_mangle)]
pub extern "C" fn pow(x: f64, y: f64) -> f64 {
    libm::pow(x, y)
}

#[cfg(test)]
mod tests {
    #[test]
    fn it_is_the_c_librarys_pow() {
        assert_eq!(super::pow(2.0, 10.0), 1024.0);
        assert_eq!(super::pow(0.9, 0.0), 1.0);
        assert!((super::pow(0.8, 2.5) - 0.8f64.powf(2.5)).abs() < 1e-15);
    }
}
