package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/example/micro-starter/internal/poll"
	"github.com/example/micro-starter/internal/regauth"
)

// initRegistries sets up every account of c.secrets in Consul and in etcd,
// retrying each until it succeeds or c.timeout has passed: the registries
// start beside this step, and Consul answers ACL calls only once it has
// elected itself leader.
func initRegistries(ctx context.Context, c config, log *slog.Logger) error {
	b, err := os.ReadFile(c.secrets)
	if err != nil {
		return err
	}
	var s secrets
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%s: %w", c.secrets, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	for _, r := range []struct {
		name string
		set  func(context.Context) error
	}{
		{"consul " + c.consul, func(ctx context.Context) error {
			return regauth.Consul(ctx, c.consul, s.ConsulManagementToken, nil, s.Accounts)
		}},
		{fmt.Sprintf("etcd %v", c.etcd), func(ctx context.Context) error {
			return regauth.Etcd(ctx, c.etcd, s.EtcdRootPassword, nil, s.Accounts)
		}},
	} {
		// ctx bounds both registries together.
		err := retry(ctx, c.timeout, time.Second, r.set, func(err error) {
			log.Info("registry not ready yet", "registry", r.name, "err", err)
		})
		if err != nil {
			return fmt.Errorf("%s: not set up within %v: %w", r.name, c.timeout, err)
		}
		log.Info("registry set up", "registry", r.name, "accounts", len(s.Accounts))
	}
	return nil
}

// retry calls set every interval until it succeeds, within has passed or
// ctx ends. Giving up, it names the registry's last answer: a try that ctx's
// end cut short says only that time ran out, so the answer before it is kept.
func retry(ctx context.Context, within, every time.Duration, set func(context.Context) error, notYet func(error)) error {
	var last error
	return poll.Until(within, every, func() error {
		if ctx.Err() != nil {
			return poll.Final(fmt.Errorf("%w; its last answer: %v", ctx.Err(), last))
		}
		try, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		err := set(try)
		if err != nil && ctx.Err() != nil && last != nil {
			return poll.Final(fmt.Errorf("%w; its last answer: %v", ctx.Err(), last))
		}
		if last = err; err != nil {
			notYet(err)
		}
		return err
	})
}
