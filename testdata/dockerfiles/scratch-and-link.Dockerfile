FROM alpine:3.20 AS certs
RUN apk add --no-cache ca-certificates

FROM alpine:3.20 AS tools
RUN apk add --no-cache ca-certificates
RUN apk add --no-cache curl

FROM alpine:3.20 AS unused
RUN echo never built

FROM scratch
COPY --from=certs /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/
COPY --link --from=tools /usr/bin/curl /usr/bin/curl
COPY --link config.yaml /etc/app/config.yaml
ENTRYPOINT ["/usr/bin/curl"]
