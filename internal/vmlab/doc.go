// Package vmlab is ferry's lab as code: a Go test harness that drives QEMU
// guests, network namespaces, packet captures and ferry's own processes
// (lender, gateway, borrower), in the manner of u-root's vmtest or
// Tailscale's natlab vmtest. One QEMU builder, console expectations with
// deadlines, and every process and namespace tied to the test's cleanup
// (SIGTERM, then SIGKILL), so a run ends everything it started whether it
// passes, fails or times out.
//
// Only tests import it; the lab tests are gated (FERRY_LAB for the four
// runs of make e2e, FERRY_SOAK for the soak) because they
// need root, QEMU, nfs-ganesha, tcpdump and minutes of CPU. Images are
// still built by scripts/build-images.sh and scripts/fetch-kernel.sh (shell
// fits there); docs/LAB.md describes the machine and the topology.
//
// The parts:
//   - Proc: a started process with its log, ended at cleanup.
//   - QEMU / VM: the builder and a running guest; Freeze and Thaw use QMP
//     stop/cont through ferry's power/qmp driver.
//   - Console: a guest's serial log read as it grows; Expect waits for a
//     regular expression with a deadline.
//   - Capture: tcpdump into a pcap; Packets filters it afterwards.
//   - Chain: the whole managed transfer of TestFullChain and TestSoak (three
//     namespaces, lender, gateway, borrower, nfs-ganesha, a lent server).
//   - Records: the guest root's soak workload read back and judged.
package vmlab
