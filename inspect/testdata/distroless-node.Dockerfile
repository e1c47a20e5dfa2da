# Hand-written distroless-style Node image: node, the loader and the 17
# libraries `berth doctor node-app:debian` lists (one COPY per file, each
# to its soname), and the app.
FROM node-app:debian AS src
FROM scratch
COPY --from=src /usr/bin/node /usr/bin/node
COPY --from=src /lib64/ld-linux-x86-64.so.2 /lib64/ld-linux-x86-64.so.2
COPY --from=src /lib/x86_64-linux-gnu/libnode.so.108 /lib/x86_64-linux-gnu/libnode.so.108
COPY --from=src /lib/x86_64-linux-gnu/libc.so.6 /lib/x86_64-linux-gnu/libc.so.6
COPY --from=src /lib/x86_64-linux-gnu/libz.so.1 /lib/x86_64-linux-gnu/libz.so.1
COPY --from=src /lib/x86_64-linux-gnu/libuv.so.1 /lib/x86_64-linux-gnu/libuv.so.1
COPY --from=src /lib/x86_64-linux-gnu/libbrotlidec.so.1 /lib/x86_64-linux-gnu/libbrotlidec.so.1
COPY --from=src /lib/x86_64-linux-gnu/libbrotlienc.so.1 /lib/x86_64-linux-gnu/libbrotlienc.so.1
COPY --from=src /lib/x86_64-linux-gnu/libbrotlicommon.so.1 /lib/x86_64-linux-gnu/libbrotlicommon.so.1
COPY --from=src /lib/x86_64-linux-gnu/libcares.so.2 /lib/x86_64-linux-gnu/libcares.so.2
COPY --from=src /lib/x86_64-linux-gnu/libnghttp2.so.14 /lib/x86_64-linux-gnu/libnghttp2.so.14
COPY --from=src /lib/x86_64-linux-gnu/libcrypto.so.3 /lib/x86_64-linux-gnu/libcrypto.so.3
COPY --from=src /lib/x86_64-linux-gnu/libssl.so.3 /lib/x86_64-linux-gnu/libssl.so.3
COPY --from=src /lib/x86_64-linux-gnu/libicui18n.so.72 /lib/x86_64-linux-gnu/libicui18n.so.72
COPY --from=src /lib/x86_64-linux-gnu/libicuuc.so.72 /lib/x86_64-linux-gnu/libicuuc.so.72
COPY --from=src /lib/x86_64-linux-gnu/libicudata.so.72 /lib/x86_64-linux-gnu/libicudata.so.72
COPY --from=src /lib/x86_64-linux-gnu/libstdc++.so.6 /lib/x86_64-linux-gnu/libstdc++.so.6
COPY --from=src /lib/x86_64-linux-gnu/libm.so.6 /lib/x86_64-linux-gnu/libm.so.6
COPY --from=src /lib/x86_64-linux-gnu/libgcc_s.so.1 /lib/x86_64-linux-gnu/libgcc_s.so.1
# Debian's libnode loads these builtins from /usr/share/nodejs at start.
COPY --from=src /usr/share/nodejs/acorn/dist/acorn.js /usr/share/nodejs/acorn/dist/acorn.js
COPY --from=src /usr/share/nodejs/acorn-walk/dist/walk.js /usr/share/nodejs/acorn-walk/dist/walk.js
COPY --from=src /usr/share/nodejs/cjs-module-lexer/lexer.js /usr/share/nodejs/cjs-module-lexer/lexer.js
COPY --from=src /usr/share/nodejs/cjs-module-lexer/dist/lexer.js /usr/share/nodejs/cjs-module-lexer/dist/lexer.js
COPY --from=src /usr/share/nodejs/undici/undici-fetch.js /usr/share/nodejs/undici/undici-fetch.js
COPY --from=src /app /app
WORKDIR /app
CMD ["node", "app.js"]
