//! Host metrics from /proc and /sys: CPU, memory, swap, disks, load, network, temperatures,
//! uptime, processes.
