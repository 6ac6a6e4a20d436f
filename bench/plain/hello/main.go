// Command hello is bench/plain's hello service: hellopb.HelloService,
// calling user with plain go-micro's client.
package main

import (
	"context"
	"fmt"
	"os"

	merrors "go-micro.dev/v4/errors"

	"github.com/example/micro-starter/bench/plain"
	hellopb "github.com/example/micro-starter/services/hello/proto"
	userpb "github.com/example/micro-starter/services/user/proto"
)

func main() {
	svc := plain.NewService("hello")
	svc.Init()
	h := &handler{users: userpb.NewUserService("user", svc.Client()), instance: "hello-" + svc.Server().Options().Id}
	if err := hellopb.RegisterHelloServiceHandler(svc.Server(), h); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
	if err := svc.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "hello:", err)
		os.Exit(1)
	}
}

type handler struct {
	users    userpb.UserService
	instance string
}

func (h *handler) Greet(ctx context.Context, req *hellopb.GreetRequest, rsp *hellopb.GreetResponse) error {
	name := req.Name
	if req.UserId != "" {
		u, err := h.users.Get(ctx, &userpb.GetRequest{Id: req.UserId})
		if err != nil {
			return err
		}
		name, rsp.UserInstance = u.User.GetName(), u.Instance
	}
	if name == "" {
		return merrors.BadRequest("hello.Greet", "user_id or name: one is required")
	}
	rsp.Message, rsp.Instance = "Hello, "+name+"!", h.instance
	return nil
}
