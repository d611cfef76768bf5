ARG REGISTRY=docker.io

FROM ${REGISTRY}/library/golang:1.23-alpine AS build
ARG TARGETARCH
WORKDIR /src
COPY . .
RUN CGO_ENABLED=0 GOARCH=$TARGETARCH go build -o /out/app .

FROM ${REGISTRY}/library/alpine:3.20
RUN apk add --no-cache ca-certificates
COPY --from=build /out/app /usr/local/bin/app
ENTRYPOINT ["/usr/local/bin/app"]
