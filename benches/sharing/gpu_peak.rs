//! The dense bf16 tensor-core peak of known cards (vendor datasheets, without sparsity), for the
//! "% of bf16 peak" column. `PREFIX_ATTN_BF16_PEAK_TFLOPS` overrides it; an unknown card has no
//! such column rather than a guessed one.

/// Datasheet dense bf16 TFLOP/s by a substring of the device name, most specific first.
const PEAKS: [(&str, f64); 9] = [
    ("H100 PCIe", 756.0),
    ("H100", 989.0),
    ("H200", 989.0),
    ("GH200", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("A10G", 70.0),
    ("L4", 121.0),
    ("RTX 4090", 165.0),
];

pub fn bf16_peak_tflops(device_name: &str) -> Option<f64> {
    PEAKS
        .iter()
        .find(|(key, _)| device_name.contains(key))
        .map(|&(_, tf)| tf)
}
