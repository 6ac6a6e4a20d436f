// Package grpcbare is the gateway -> hello -> user chain as bare grpc-go:
// an HTTP front (net/http) calling hello, and hello calling user, over
// plain gRPC with stubs that protoc-gen-go-grpc generates from the
// services' own .proto files (userpb, hellopb: `make proto`), one
// connection per caller to a fixed address, no registry, no wrappers, no
// TLS. It is the ceiling for this transport on this machine, the figure
// bench/load reads the starter's gateway path against.
//
// The generated packages register the same protobuf names as the
// services' own proto packages: a binary links one or the other, never
// both.
package grpcbare

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/example/micro-starter/bench/grpcbare/hellopb"
	"github.com/example/micro-starter/bench/grpcbare/userpb"
)

// callTimeout bounds each call, as every caller in the starter has one.
const callTimeout = 5 * time.Second

// Serve runs one hop until ctx ends: role "user" and "hello" are gRPC
// servers on ln, "gateway" an HTTP server on ln answering GET
// /hello?user_id=ID as the starter's gateway does; hello and gateway call
// the gRPC server at next.
func Serve(ctx context.Context, role string, ln net.Listener, next string) error {
	var conn *grpc.ClientConn
	if role != "user" {
		var err error
		if conn, err = grpc.NewClient(next, grpc.WithTransportCredentials(insecure.NewCredentials())); err != nil {
			return fmt.Errorf("grpcbare.Serve: dial %s: %w", next, err)
		}
		defer conn.Close()
	}
	switch role {
	case "user", "hello":
		srv := grpc.NewServer()
		if role == "user" {
			userpb.RegisterUserServiceServer(srv, userServer{})
		} else {
			hellopb.RegisterHelloServiceServer(srv, helloServer{user: userpb.NewUserServiceClient(conn)})
		}
		go func() {
			<-ctx.Done()
			srv.Stop()
		}()
		if err := srv.Serve(ln); err != nil {
			return fmt.Errorf("grpcbare.Serve %s: %w", role, err)
		}
		return nil
	case "gateway":
		srv := &http.Server{Handler: gateway(hellopb.NewHelloServiceClient(conn)), ReadHeaderTimeout: 5 * time.Second}
		go func() {
			<-ctx.Done()
			srv.Close()
		}()
		if err := srv.Serve(ln); err != nil && err != http.ErrServerClosed {
			return fmt.Errorf("grpcbare.Serve gateway: %w", err)
		}
		return nil
	}
	return fmt.Errorf("grpcbare.Serve: unknown role %q", role)
}

type userServer struct {
	userpb.UnimplementedUserServiceServer
}

func (userServer) Get(_ context.Context, req *userpb.GetRequest) (*userpb.GetResponse, error) {
	if req.Id == "" {
		return nil, status.Error(codes.InvalidArgument, "id is empty")
	}
	return &userpb.GetResponse{User: &userpb.User{Id: req.Id, Name: "Ada Lovelace", Email: "ada@example.com"}, Instance: "grpcbare-user"}, nil
}

type helloServer struct {
	hellopb.UnimplementedHelloServiceServer
	user userpb.UserServiceClient
}

func (h helloServer) Greet(ctx context.Context, req *hellopb.GreetRequest) (*hellopb.GreetResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	u, err := h.user.Get(ctx, &userpb.GetRequest{Id: req.UserId})
	if err != nil {
		return nil, err // its status passes through, as a bare server would
	}
	return &hellopb.GreetResponse{Message: "Hello, " + u.User.Name + "!", Instance: "grpcbare-hello", UserInstance: u.Instance}, nil
}

func gateway(hello hellopb.HelloServiceClient) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), callTimeout)
		defer cancel()
		rsp, err := hello.Greet(ctx, &hellopb.GreetRequest{UserId: r.URL.Query().Get("user_id")})
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"message": rsp.Message, "instances": map[string]string{"hello": rsp.Instance, "user": rsp.UserInstance}})
	})
	return mux
}
