package grpc

import (
	"encoding/json"
	"io"
	"strings"
	"sync"

	b "bytes"

	"github.com/golang/protobuf/jsonpb"
	"github.com/golang/protobuf/proto"
	"go-micro.dev/v4/codec"
	"go-micro.dev/v4/codec/bytes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/metadata"
)

type jsonCodec struct{}
type bytesCodec struct{}
type protoCodec struct{}
type wrapCodec struct{ encoding.Codec }

var jsonpbMarshaler = &jsonpb.Marshaler{
	EnumsAsInts:  false,
	EmitDefaults: false,
	OrigName:     true,
}

var (
	defaultGRPCCodecs = map[string]encoding.Codec{
		"application/json":         jsonCodec{},
		"application/proto":        protoCodec{},
		"application/protobuf":     protoCodec{},
		"application/octet-stream": protoCodec{},
		"application/grpc":         protoCodec{},
		"application/grpc+json":    jsonCodec{},
		"application/grpc+proto":   protoCodec{},
		"application/grpc+bytes":   bytesCodec{},
	}
)

func (w wrapCodec) String() string {
	return w.Codec.Name()
}

func (w wrapCodec) Marshal(v interface{}) ([]byte, error) {
	b, ok := v.(*bytes.Frame)
	if ok {
		return b.Data, nil
	}
	return w.Codec.Marshal(v)
}

// Fork: AppendMarshal is Marshal into dst (a server's buffer for the
// answer, pkg/service/rpcserver), or into a slice of its own if dst is
// short: the same bytes and errors, without the copy json.Marshal and
// proto.Marshal make of what they encoded.
func (w wrapCodec) AppendMarshal(dst []byte, v interface{}) ([]byte, error) {
	if b, ok := v.(*bytes.Frame); ok {
		return b.Data, nil
	}
	switch w.Codec.(type) {
	case jsonCodec:
		if _, ok := v.(proto.Message); !ok {
			return appendJSON(dst, v)
		}
	case protoCodec:
		m, ok := v.(proto.Message)
		if !ok {
			return nil, codec.ErrInvalidMessage
		}
		buf := proto.Buffer{}
		buf.SetBuf(dst)
		if err := buf.Marshal(m); err != nil { // proto.Marshal, appending
			return nil, err
		}
		return buf.Bytes(), nil
	}
	return w.Codec.Marshal(v)
}

// Fork: appendJSON appends v to dst as json.Marshal encodes it, through an
// encoder kept for the next call.
func appendJSON(dst []byte, v interface{}) ([]byte, error) {
	a := jsonAppenders.Get().(*jsonAppender)
	a.buf = dst
	err := a.enc.Encode(v) // as json.Marshal, and a newline
	out := a.buf
	a.buf = nil
	jsonAppenders.Put(a)
	if err != nil {
		return nil, err
	}
	return out[:len(out)-1], nil
}

type jsonAppender struct {
	buf []byte
	enc *json.Encoder // writes to buf
}

func (a *jsonAppender) Write(p []byte) (int, error) {
	a.buf = append(a.buf, p...)
	return len(p), nil
}

var jsonAppenders = sync.Pool{New: func() interface{} {
	a := &jsonAppender{}
	a.enc = json.NewEncoder(a)
	return a
}}

func (w wrapCodec) Unmarshal(data []byte, v interface{}) error {
	b, ok := v.(*bytes.Frame)
	if ok {
		b.Data = data
		return nil
	}
	if v == nil {
		return nil
	}
	return w.Codec.Unmarshal(data, v)
}

func (protoCodec) Marshal(v interface{}) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, codec.ErrInvalidMessage
	}
	return proto.Marshal(m)
}

func (protoCodec) Unmarshal(data []byte, v interface{}) error {
	m, ok := v.(proto.Message)
	if !ok {
		return codec.ErrInvalidMessage
	}
	return proto.Unmarshal(data, m)
}

func (protoCodec) Name() string {
	return "proto"
}

func (jsonCodec) Marshal(v interface{}) ([]byte, error) {
	if pb, ok := v.(proto.Message); ok {
		s, err := jsonpbMarshaler.MarshalToString(pb)
		return []byte(s), err
	}

	return json.Marshal(v)
}

func (jsonCodec) Unmarshal(data []byte, v interface{}) error {
	if len(data) == 0 {
		return nil
	}
	if pb, ok := v.(proto.Message); ok {
		return jsonpb.Unmarshal(b.NewReader(data), pb)
	}
	return decodeJSON(data, v) // Fork: json.Unmarshal, on a pooled decoder
}

// Fork: decodeJSON is json.Unmarshal through a pooled json.Decoder, whose
// state (its decodeState, error context and scanner stack) json.Unmarshal
// makes anew at every call: 4 allocations. Input that is not one valid
// JSON value goes to json.Unmarshal for its error, and so does a large one,
// so that no decoder keeps a large buffer.
func decodeJSON(data []byte, v interface{}) error {
	if len(data) > maxPooledJSON || !json.Valid(data) {
		return json.Unmarshal(data, v)
	}
	d := jsonDecoders.Get().(*jsonDecoder)
	d.r.data = data
	err := d.dec.Decode(v) // json.Unmarshal's decoding, of the one value
	d.r.data = nil
	if err == nil { // an error may leave the decoder mid-stream
		jsonDecoders.Put(d)
	}
	return err
}

const maxPooledJSON = 64 << 10

type jsonDecoder struct {
	r   bytesReader
	dec *json.Decoder // reads r
}

// bytesReader reads data, then io.EOF.
type bytesReader struct{ data []byte }

func (r *bytesReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

var jsonDecoders = sync.Pool{New: func() interface{} {
	d := &jsonDecoder{}
	d.dec = json.NewDecoder(&d.r)
	return d
}}

func (jsonCodec) Name() string {
	return "json"
}

func (bytesCodec) Marshal(v interface{}) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, codec.ErrInvalidMessage
	}
	return *b, nil
}

func (bytesCodec) Unmarshal(data []byte, v interface{}) error {
	b, ok := v.(*[]byte)
	if !ok {
		return codec.ErrInvalidMessage
	}
	*b = data
	return nil
}

func (bytesCodec) Name() string {
	return "bytes"
}

type grpcCodec struct {
	// headers
	id       string
	target   string
	method   string
	endpoint string

	s grpc.ServerStream
	c encoding.Codec
}

func (g *grpcCodec) ReadHeader(m *codec.Message, mt codec.MessageType) error {
	md, _ := metadata.FromIncomingContext(g.s.Context())
	if m == nil {
		m = new(codec.Message)
	}
	if m.Header == nil {
		m.Header = make(map[string]string, len(md))
	}
	for k, v := range md {
		m.Header[k] = strings.Join(v, ",")
	}
	m.Id = g.id
	m.Target = g.target
	m.Method = g.method
	m.Endpoint = g.endpoint
	return nil
}

func (g *grpcCodec) ReadBody(v interface{}) error {
	// caller has requested a frame
	if f, ok := v.(*bytes.Frame); ok {
		return g.s.RecvMsg(f)
	}
	return g.s.RecvMsg(v)
}

func (g *grpcCodec) Write(m *codec.Message, v interface{}) error {
	// if we don't have a body
	if v != nil {
		b, err := g.c.Marshal(v)
		if err != nil {
			return err
		}
		m.Body = b
	}
	// write the body using the framing codec
	return g.s.SendMsg(&bytes.Frame{Data: m.Body})
}

func (g *grpcCodec) Close() error {
	return nil
}

func (g *grpcCodec) String() string {
	return "grpc"
}
