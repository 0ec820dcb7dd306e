package ike

import (
	"context"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"ferry/ipsec/dataplane/dataplanetest"
)

// BenchmarkResponderHandshakes runs full IKE_SA_INIT + IKE_AUTH
// handshakes (ECDSA P-256 certificates, ecp256, allow list, virtual IP)
// against one responder, 16 at a time, initiator and responder sharing
// the machine's cores.
func BenchmarkResponderHandshakes(b *testing.B) {
	l := newLab(b)
	gw, ini := l.gwCfg, l.initCfg
	gw.DataPlane, ini.DataPlane = dataplanetest.NewNull(), dataplanetest.NewNull()
	gw.CookieThreshold, gw.HalfOpenMax = 1<<20, 1<<20
	gw.Pool = nil
	var gd, id *Daemon
	var err error
	l.p.b.Do(b, func() { gd, err = New(gw) })
	if err != nil {
		b.Fatal(err)
	}
	l.p.a.Do(b, func() { id, err = New(ini) })
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go gd.Run(ctx)
	go id.Run(ctx)
	t := Target{Gateway: gwOuter, RemoteSubnets: []netip.Prefix{gwSubnet}}
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	var mu sync.Mutex
	var failed int
	for range b.N {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := id.Connect(ctx, t); err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
	// CPU per handshake, both ends together: on a shared machine the wall
	// rate depends on the neighbours, this does not.
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/handshake")
	if failed > 0 {
		b.Fatalf("%d of %d handshakes failed", failed, b.N)
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
