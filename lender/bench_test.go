package lender

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"ferry/api"
	"ferry/store"
)

// BenchmarkEnroll measures whole enrollments: token check, CSR signature
// and policy check, signing, and the store transaction (shared commits).
func BenchmarkEnroll(b *testing.B) {
	ctx := context.Background()
	f := newFixture(b, 0)
	var reqs []api.EnrollRequest
	for n := 0; n < b.N; n += api.MaxServers {
		count := min(api.MaxServers, b.N-n)
		err := f.st.Update(ctx, func(tx store.Tx) error {
			for i := range count {
				mac := macOf(n + i)
				if err := tx.Put(store.Servers, mac, Server{ID: serverID(mac), MAC: mac, Power: "manual", Pool: "p", State: ServerFree}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		l, err := f.m.RequestLease(ctx, leaseReq(fmt.Sprintf("bench-%08d", n), count))
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range l.Servers {
			boot, _ := f.m.BootFor(s.MAC)
			_, csr := csrFor(b, boot.LeaseID+"/"+boot.ServerID)
			reqs = append(reqs, api.EnrollRequest{Token: boot.Token, MAC: s.MAC, CSR: csr})
		}
	}
	var next atomic.Int64
	b.SetParallelism(32) // many servers enroll at once; their commits are shared
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := reqs[next.Add(1)-1]
			if _, err := f.m.Enroll(ctx, testFrom, r); err != nil {
				b.Error(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "enrollments/s")
}

// BenchmarkLeaseRequest100 measures a lease of 100 servers until every
// server has its token and boot parameters (ready to enroll).
func BenchmarkLeaseRequest100(b *testing.B) {
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		f := newFixture(b, 100)
		b.StartTimer()
		l, err := f.m.RequestLease(ctx, leaseReq("bench-lease-100", 100))
		if err != nil {
			b.Fatal(err)
		}
		for _, s := range l.Servers {
			if _, ok := f.m.BootFor(s.MAC); !ok {
				b.Fatalf("%s not ready to enroll", s.MAC)
			}
		}
	}
}
