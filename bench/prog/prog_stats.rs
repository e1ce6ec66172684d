//! `prog-stats`: the kernel's bpf_stats accounting of attached programs.

use dnsredir::bpf::sys;

/// kernel.bpf_stats_enabled accounting of attached programs, by id (for end-to-end runs).
pub fn print_prog_stats(ids: &[String]) -> Result<(), String> {
    for id in ids {
        let n: u32 = id.parse().map_err(|e| format!("{id}: {e}"))?;
        let fd = sys::prog_fd_by_id(n).map_err(|e| format!("program {n}: {e}"))?;
        let st = sys::prog_stats(&fd).map_err(|e| format!("program {n}: {e}"))?;
        println!("{n} {} {}", st.run_cnt, st.run_time_ns);
    }
    Ok(())
}
