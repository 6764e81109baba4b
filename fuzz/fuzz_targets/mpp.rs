#![no_main]

mod common;

use belabox_proc::mpp::{self, MppCore, MppLoad};
use libfuzzer_sys::fuzz_target;

/// The one row `mpp_show_device_load` prints for `core`.
fn printed(core: &MppCore<'_>) -> String {
    format!(
        "{:<25} load: {:3}.{:02}% utilization: {:3}.{:02}%\n",
        core.device,
        core.load_centi / 100,
        core.load_centi % 100,
        core.utilization_centi / 100,
        core.utilization_centi % 100,
    )
}

fuzz_target!(|data: &[u8]| match mpp::parse(data) {
    MppLoad::IntervalUnset => assert!(data.starts_with(mpp::INTERVAL_UNSET)),
    MppLoad::Cores(rows) => {
        assert!(!data.starts_with(mpp::INTERVAL_UNSET));
        common::check_rows(rows.collect(), data, |core| {
            common::check_name(core.device, data);
            let row = printed(&core);
            let MppLoad::Cores(again) = mpp::parse(row.as_bytes()) else {
                panic!("a printed row read as the unset hint");
            };
            assert_eq!(again.collect::<Vec<_>>(), [Ok(core)]);
            assert_eq!(core.load_percent(), f64::from(core.load_centi) / 100.0);
        });
    }
});
