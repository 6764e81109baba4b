#![no_main]

mod common;

use belabox_proc::rknpu::{self, NpuCore};
use libfuzzer_sys::fuzz_target;

fn cores(buf: &[u8]) -> Vec<NpuCore> {
    rknpu::parse(buf)
        .map(|l| l.cores().collect())
        .unwrap_or_default()
}

fuzz_target!(|data: &[u8]| match rknpu::parse(data) {
    Ok(load) => {
        common::check_single_line(data);
        let got: Vec<_> = load.cores().collect();
        assert_eq!(got.len(), load.len());
        assert!(!load.is_empty());
        // At least 3 bytes a core ("0%" and a separator).
        assert!(
            got.len() <= data.len() / 3,
            "more cores than the line holds"
        );
        for (i, core) in got.iter().enumerate() {
            assert_eq!(
                usize::try_from(core.index).ok(),
                Some(i),
                "cores out of order"
            );
        }
        // Printed back as the driver prints it, the line parses to the same cores.
        let multi: String = got
            .iter()
            .map(|c| format!(" Core{}: {:2}%,", c.index, c.percent))
            .collect();
        assert_eq!(cores(format!("NPU load: {multi}\n").as_bytes()), got);
        if let [one] = got.as_slice() {
            let single = format!("NPU load: {:2}%\n", one.percent);
            assert_eq!(cores(single.as_bytes()), got);
        }
    }
    Err(err) => common::check_error(err, data),
});
