package main

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"unicode/utf8"

	"go-micro.dev/v4/client"
	merrors "go-micro.dev/v4/errors"

	"github.com/example/micro-starter/pkg/wrappers"
	hellopb "github.com/example/micro-starter/services/hello/proto"
	userpb "github.com/example/micro-starter/services/user/proto"
)

const maxNameLen = 100

// Handler serves HelloService, looking users up in the user service.
type Handler struct {
	users    userpb.UserService
	instance string
	log      *slog.Logger
}

func (h *Handler) Greet(ctx context.Context, req *hellopb.GreetRequest, rsp *hellopb.GreetResponse) error {
	userID, name := strings.TrimSpace(req.UserId), strings.TrimSpace(req.Name)
	switch {
	case userID == "" && name == "":
		return merrors.BadRequest("hello.Greet", "user_id or name: one is required")
	case userID != "" && name != "":
		return merrors.BadRequest("hello.Greet", "user_id and name: give one, not both")
	case utf8.RuneCountInString(name) > maxNameLen:
		return merrors.BadRequest("hello.Greet", "name: longer than %d characters", maxNameLen)
	}
	if userID != "" {
		u, err := h.users.Get(ctx, &userpb.GetRequest{Id: userID})
		if err != nil {
			// With the handler's context: the line carries the request's
			// trace, span and request ids.
			if e, ok := wrappers.Error(err); !ok || e.Code >= 500 || e.Code == http.StatusRequestTimeout {
				h.log.WarnContext(ctx, "user lookup failed", "user_id", userID, "err", err)
			}
			// As it is: the server (pkg/service) answers it under hello's
			// id unless the user service answered it, so a 404 stays a 404
			// and a failed connection is hello's failure, not retried.
			return err
		}
		name = u.GetUser().GetName()
		rsp.UserInstance = u.Instance
	}
	rsp.Message = "Hello, " + name + "!" // one allocation; Sprintf took two
	rsp.Instance = h.instance
	return nil
}

// newHandler is what main and the tests use to build a Handler.
func newHandler(c client.Client, instance string, log *slog.Logger) *Handler {
	return &Handler{users: userpb.NewUserService("user", c), instance: instance, log: log}
}
