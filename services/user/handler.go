package main

import (
	"context"
	"errors"

	merrors "go-micro.dev/v4/errors"

	userpb "github.com/example/micro-starter/services/user/proto"
)

// Handler serves UserService from a Directory. It is the one place where
// directory errors become go-micro errors.
type Handler struct {
	dir      *Directory
	instance string // registry node id, returned so callers can see who answered
}

func (h *Handler) Get(_ context.Context, req *userpb.GetRequest, rsp *userpb.GetResponse) error {
	u, err := h.dir.Get(req.Id)
	if err != nil {
		return rpcError("user.Get", err)
	}
	rsp.User = toProto(u)
	rsp.Instance = h.instance
	return nil
}

func (h *Handler) List(_ context.Context, req *userpb.ListRequest, rsp *userpb.ListResponse) error {
	users, total, err := h.dir.List(int(req.Page), int(req.PageSize))
	if err != nil {
		return rpcError("user.List", err)
	}
	for _, u := range users {
		rsp.Users = append(rsp.Users, toProto(u))
	}
	rsp.Total = int32(total)
	rsp.Instance = h.instance
	return nil
}

func rpcError(id string, err error) error {
	switch {
	case errors.Is(err, ErrInvalid):
		return merrors.BadRequest(id, "%v", err)
	case errors.Is(err, ErrNotFound):
		return merrors.NotFound(id, "%v", err)
	default:
		return merrors.InternalServerError(id, "%v", err)
	}
}

func toProto(u User) *userpb.User {
	return &userpb.User{Id: u.ID, Name: u.Name, Email: u.Email}
}
