//! The collector table: one row per periodic collector.
//!
//! A row is the collector's name (the `[collect.intervals]` key, `collector` label value and
//! health component), the type in `collect/` that implements `collect::Collector` (which reads,
//! bounds its own worst-case sample count and says when its source is absent), whether its reads
//! may block (it then runs on the worker lane: `collect::worker`), and its metrics, each with its
//! name, kind and the labels its samples carry.
//!
//! Adding a collector: its parser in `proc/`, its file in `collect/`, a row here, its fixture
//! files under `tests/fixtures/`, and its line in docs/metrics.md. Nothing else names it: config
//! keys, health components, self-metrics, the reserved labels, ring sizing and `status` all
//! iterate this table (checked by `tests/catalog_docs.rs` for the docs and shipped configs).
//!
//! may_block: /proc files are answered from kernel memory; a thermal `temp`, hwmon and INA3221
//! attributes may wait on an I²C bus, statvfs on a network file system's server.

/// Calls `$callback!` with the table (the "X-macro" pattern: one table, several expansions).
macro_rules! collector_table {
    ($callback:ident) => {
        $callback! {
            Cpu => "cpu", cpu::CpuCollector, may_block: false, metrics {
                CpuUsagePercent => "cpu_usage_percent", Gauge, [Core];
                CpuSecondsTotal => "cpu_seconds_total", Counter, [Core, Mode];
            }
            Memory => "memory", FileCollector<memory::MemInfo>, may_block: false, metrics {
                MemoryTotalBytes => "memory_total_bytes", Gauge, [];
                MemoryAvailableBytes => "memory_available_bytes", Gauge, [];
                MemoryUsedBytes => "memory_used_bytes", Gauge, [];
                MemorySwapTotalBytes => "memory_swap_total_bytes", Gauge, [];
                MemorySwapUsedBytes => "memory_swap_used_bytes", Gauge, [];
            }
            Disk => "disk", disk::DiskCollector, may_block: false, metrics {
                DiskReadOpsTotal => "disk_read_ops_total", Counter, [Device];
                DiskWriteOpsTotal => "disk_write_ops_total", Counter, [Device];
                DiskReadBytesTotal => "disk_read_bytes_total", Counter, [Device];
                DiskWriteBytesTotal => "disk_write_bytes_total", Counter, [Device];
                DiskReadTimeSecondsTotal => "disk_read_time_seconds_total", Counter, [Device];
                DiskWriteTimeSecondsTotal => "disk_write_time_seconds_total", Counter, [Device];
                DiskIoTimeSecondsTotal => "disk_io_time_seconds_total", Counter, [Device];
                DiskIoTimeWeightedSecondsTotal => "disk_io_time_weighted_seconds_total", Counter, [Device];
                DiskDevicesDroppedTotal => "disk_devices_dropped_total", Counter, [];
            }
            Network => "network", network::NetworkCollector, may_block: false, metrics {
                NetworkReceiveBytesTotal => "network_receive_bytes_total", Counter, [Interface];
                NetworkTransmitBytesTotal => "network_transmit_bytes_total", Counter, [Interface];
                NetworkReceivePacketsTotal => "network_receive_packets_total", Counter, [Interface];
                NetworkTransmitPacketsTotal => "network_transmit_packets_total", Counter, [Interface];
                NetworkReceiveErrorsTotal => "network_receive_errors_total", Counter, [Interface];
                NetworkTransmitErrorsTotal => "network_transmit_errors_total", Counter, [Interface];
                NetworkReceiveDropsTotal => "network_receive_drops_total", Counter, [Interface];
                NetworkTransmitDropsTotal => "network_transmit_drops_total", Counter, [Interface];
                NetworkInterfacesDroppedTotal => "network_interfaces_dropped_total", Counter, [];
            }
            Filesystem => "filesystem", filesystem::FilesystemCollector, may_block: true, metrics {
                FilesystemSizeBytes => "filesystem_size_bytes", Gauge, [Mountpoint, Fstype];
                FilesystemFreeBytes => "filesystem_free_bytes", Gauge, [Mountpoint, Fstype];
                FilesystemAvailBytes => "filesystem_avail_bytes", Gauge, [Mountpoint, Fstype];
                FilesystemFiles => "filesystem_files", Gauge, [Mountpoint, Fstype];
                FilesystemFilesFree => "filesystem_files_free", Gauge, [Mountpoint, Fstype];
                FilesystemMountsDroppedTotal => "filesystem_mounts_dropped_total", Counter, [];
            }
            Thermal => "thermal", thermal::ThermalCollector, may_block: true, metrics {
                ThermalTemperatureCelsius => "thermal_temperature_celsius", Gauge, [Zone, Sensor];
            }
            Load => "load", FileCollector<load::LoadAvg>, may_block: false, metrics {
                SystemLoad1 => "system_load1", Gauge, [];
                SystemLoad5 => "system_load5", Gauge, [];
                SystemLoad15 => "system_load15", Gauge, [];
            }
            Uptime => "uptime", FileCollector<uptime::Uptime>, may_block: false, metrics {
                SystemUptimeSeconds => "system_uptime_seconds", Gauge, [];
            }
            // may_block false: cpufreq attributes are answered from the policy in memory
            // (`scaling_cur_freq` prints `policy->cur` for cpufreq-dt and tegra drivers).
            Cpufreq => "cpufreq", cpufreq::CpufreqCollector, may_block: false, metrics {
                CpufreqFrequencyHertz => "cpufreq_frequency_hertz", Gauge, [Policy];
                CpufreqMaxFrequencyHertz => "cpufreq_max_frequency_hertz", Gauge, [Policy];
                CpufreqBelowMaxSecondsTotal => "cpufreq_below_max_seconds_total", Counter, [Policy];
                CpufreqTransitionsTotal => "cpufreq_transitions_total", Counter, [Policy];
            }
            // may_block true: INA3221 rails are read over I²C at each read, and a power
            // supply's `voltage_now` may ask a fuel gauge or USB-PD controller on a bus.
            Power => "power", power::PowerCollector, may_block: true, metrics {
                PowerRailVoltageVolts => "power_rail_voltage_volts", Gauge, [Chip, Rail];
                PowerRailCurrentAmperes => "power_rail_current_amperes", Gauge, [Chip, Rail];
                PowerRailPowerWatts => "power_rail_power_watts", Gauge, [Chip, Rail];
                PowerRailCriticalAlarm => "power_rail_critical_alarm", Gauge, [Chip, Rail];
                PowerRailWarningAlarm => "power_rail_warning_alarm", Gauge, [Chip, Rail];
                PowerSupplyVoltageVolts => "power_supply_voltage_volts", Gauge, [Device];
            }
            // may_block true: a fan controller or tachometer may sit on I²C.
            Fan => "fan", fan::FanCollector, may_block: true, metrics {
                FanPwmRatio => "fan_pwm_ratio", Gauge, [Chip, Fan];
                FanSpeedRpm => "fan_speed_rpm", Gauge, [Chip, Fan];
            }
            // may_block: nvgpu's `device/load` wakes the GPU (gk20a_busy) and may wait for its
            // power-up; debugfs and the MPP proc file take driver locks.
            Engine => "engine", engine::EngineCollector, may_block: true, metrics {
                SocEngineLoadPercent => "soc_engine_load_percent", Gauge, [Engine, Device];
                SocEngineFrequencyHertz => "soc_engine_frequency_hertz", Gauge, [Engine, Device];
                SocEngineMaxFrequencyHertz => "soc_engine_max_frequency_hertz", Gauge, [Engine, Device];
            }
            // may_block: cpufreq, devfreq and pwm-fan devices answer from memory, but an ACPI
            // fan's `cur_state` evaluates `_FST` (an embedded controller) and an I²C fan
            // controller's may read its register.
            Cooling => "cooling", cooling::CoolingCollector, may_block: true, metrics {
                CoolingDeviceState => "cooling_device_state", Gauge, [Device, Type];
                CoolingDeviceMaxState => "cooling_device_max_state", Gauge, [Device, Type];
                CoolingDeviceThrottledSecondsTotal => "cooling_device_throttled_seconds_total", Counter, [Device, Type];
            }
            // may_block false: the tick copies the latest values from a table that a task on the
            // executor keeps from ModemManager over D-Bus (collect/modem.rs); it never waits on
            // the bus.
            Modem => "modem", modem::ModemCollector, may_block: false, metrics {
                ModemSignalQualityPercent => "modem_signal_quality_percent", Gauge, [Modem];
                ModemSignalRssiDbm => "modem_signal_rssi_dbm", Gauge, [Modem, Technology];
                ModemSignalRsrpDbm => "modem_signal_rsrp_dbm", Gauge, [Modem, Technology];
                ModemSignalRsrqDb => "modem_signal_rsrq_db", Gauge, [Modem, Technology];
                ModemSignalSnrDb => "modem_signal_snr_db", Gauge, [Modem, Technology];
                ModemAccessTechnology => "modem_access_technology", Gauge, [Modem, Technology];
                ModemRegistrationState => "modem_registration_state", Gauge, [Modem, State];
                ModemOperatorInfo => "modem_operator_info", Gauge, [Modem, Operator];
                ModemConnected => "modem_connected", Gauge, [Modem];
                ModemReceiveBytesTotal => "modem_receive_bytes_total", Counter, [Modem];
                ModemTransmitBytesTotal => "modem_transmit_bytes_total", Counter, [Modem];
                ModemAddedTotal => "modem_added_total", Counter, [];
                ModemRemovedTotal => "modem_removed_total", Counter, [];
                ModemDroppedTotal => "modem_dropped_total", Counter, [];
            }
        }
    };
}

pub(crate) use collector_table;
