# The hand-written distroless-style image slim is measured against: only
# the files the dynamic C program needs, copied out of the Debian image.
FROM c-dynamic:debian AS src
FROM scratch
COPY --from=src /usr/local/bin/hello /usr/local/bin/hello
COPY --from=src /lib64/ld-linux-x86-64.so.2 /lib64/
COPY --from=src /lib/x86_64-linux-gnu/libc.so.6 /lib/x86_64-linux-gnu/libnss_files.so.2 /lib/x86_64-linux-gnu/
COPY --from=src /etc/passwd /etc/group /etc/nsswitch.conf /etc/
ENV PATH=/usr/local/bin
CMD ["hello"]
