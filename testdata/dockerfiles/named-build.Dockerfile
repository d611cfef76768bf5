# A Go service: build, test, and a small runtime image.
ARG REGISTRY=docker.io
ARG GO_VERSION=1.23

FROM ${REGISTRY}/library/golang:${GO_VERSION}-alpine AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN go build -ldflags "-X main.version=${VERSION}" \
      -o /out/app ./cmd/app

FROM build AS test
RUN go test ./... > /out/test-report.txt

FROM ${REGISTRY}/library/alpine:3.20
RUN apk add --no-cache ca-certificates
COPY --from=build /out/app /usr/local/bin/app
COPY --from=test /out/test-report.txt /usr/share/app/
ENV APP_ENV=production
EXPOSE 8080
USER nobody
CMD ["/usr/local/bin/app"]
