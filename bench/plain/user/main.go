// Command user is bench/plain's user service: userpb.UserService over a
// few fixed users, with plain go-micro. With --fail every call answers a
// 500: bench/chaos's sick instance.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"
	"go-micro.dev/v4"
	merrors "go-micro.dev/v4/errors"

	"github.com/example/micro-starter/bench/plain"
	userpb "github.com/example/micro-starter/services/user/proto"
)

func main() {
	var fail bool
	svc := plain.NewService("user", micro.Flags(&cli.BoolFlag{
		Name: "fail", Usage: "answer every call with a 500 (a sick instance)", Destination: &fail,
	}))
	svc.Init()
	// The registry's node id, as the starter's user answers it.
	h := &handler{instance: "user-" + svc.Server().Options().Id, fail: fail, users: []*userpb.User{
		{Id: "ada", Name: "Ada Lovelace", Email: "ada@example.com"},
		{Id: "alan", Name: "Alan Turing", Email: "alan@example.com"},
		{Id: "grace", Name: "Grace Hopper", Email: "grace@example.com"},
	}}
	if err := userpb.RegisterUserServiceHandler(svc.Server(), h); err != nil {
		fmt.Fprintln(os.Stderr, "user:", err)
		os.Exit(1)
	}
	if err := svc.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "user:", err)
		os.Exit(1)
	}
}

type handler struct {
	instance string
	fail     bool
	users    []*userpb.User
}

func (h *handler) Get(_ context.Context, req *userpb.GetRequest, rsp *userpb.GetResponse) error {
	if h.fail {
		return merrors.InternalServerError("user.Get", "sick instance")
	}
	for _, u := range h.users {
		if u.Id == req.Id {
			rsp.User, rsp.Instance = u, h.instance
			return nil
		}
	}
	return merrors.NotFound("user.Get", "user %q: not found", req.Id)
}

func (h *handler) List(_ context.Context, _ *userpb.ListRequest, rsp *userpb.ListResponse) error {
	if h.fail {
		return merrors.InternalServerError("user.List", "sick instance")
	}
	rsp.Users, rsp.Total, rsp.Instance = h.users, int32(len(h.users)), h.instance
	return nil
}
