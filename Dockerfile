# Timbre in a container, as a thin wrapper over the same scripts a desktop runs, so the image cannot
# drift from them: ops/install-deps installs the Debian 12 packages the classic engine needs, and the
# gpu target adds ops/install-gpu's venv. Debian 12 is the base because those scripts name its
# packages (libpython3.11, libicu72); PyTorch's CUDA wheels carry the CUDA runtime, and the NVIDIA
# Container Toolkit mounts the driver, so no CUDA base image is needed.
#
#   docker build -t timbre .                      # CPU: the classic engine
#   docker build -t timbre-gpu --target gpu .     # + Qwen3-TTS and XTTS-v2 (downloads models: large)
#   docker run -p 5075:5075 -v timbre-data:/var/lib/timbre -e Timbre__Auth__ApiKeys__0=$(openssl rand -hex 24) timbre
#
# Not built on the build machines (they have no container runtime or registry); see README, "Scaling out".

FROM debian:12-slim AS dotnet
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
# Microsoft's install script, pinned to the .NET 10 channel (Debian 12 has no .NET package).
ARG DOTNET_COMPONENT=aspnetcore
RUN curl -fsSL https://dot.net/v1/dotnet-install.sh -o /tmp/dotnet-install.sh \
    && if [ "$DOTNET_COMPONENT" = sdk ]; then bash /tmp/dotnet-install.sh --channel 10.0 --install-dir /usr/share/dotnet; \
       else bash /tmp/dotnet-install.sh --channel 10.0 --runtime "$DOTNET_COMPONENT" --install-dir /usr/share/dotnet; fi \
    && ln -s /usr/share/dotnet/dotnet /usr/bin/dotnet && rm /tmp/dotnet-install.sh
ENV DOTNET_CLI_TELEMETRY_OPTOUT=1

FROM dotnet AS build
RUN bash -c 'curl -fsSL https://dot.net/v1/dotnet-install.sh | bash -s -- --channel 10.0 --install-dir /usr/share/dotnet'
WORKDIR /src
COPY . .
RUN dotnet publish ControlPlane/ControlPlane.csproj -c Release -o /opt/timbre -nologo

FROM dotnet AS cpu
COPY ops/install-deps /opt/timbre-src/ops/install-deps
RUN /opt/timbre-src/ops/install-deps && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/timbre /opt/timbre
RUN useradd --system --user-group --home-dir /var/lib/timbre --shell /usr/sbin/nologin timbre \
    && install -d -m 0750 -o timbre -g timbre /var/lib/timbre
USER timbre
WORKDIR /opt/timbre
ENV Timbre__DataDirectory=/var/lib/timbre \
    ASPNETCORE_URLS=http://0.0.0.0:5075
VOLUME /var/lib/timbre
EXPOSE 5075
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s CMD curl -fsS http://127.0.0.1:5075/ready || exit 1
# SIGTERM drains streams in flight (Timbre:Speech:DrainTimeoutSeconds): give `docker stop` -t 45.
STOPSIGNAL SIGTERM
ENTRYPOINT ["dotnet", "/opt/timbre/Timbre.ControlPlane.dll"]

FROM cpu AS gpu
USER root
# The scripts keep their place in the tree (they find each other from it).
COPY ops /opt/timbre-src/ops
ARG ENGINES=qwen3
ARG QWEN_MODEL=Qwen/Qwen3-TTS-12Hz-1.7B-Base
RUN /opt/timbre-src/ops/install-gpu --engines "$ENGINES" --qwen-model "$QWEN_MODEL" \
      --venv /opt/timbre-gpu/venv --models-dir /opt/timbre-gpu/models --env-file /opt/timbre-gpu/timbre.env --no-check \
    && chown -R root:root /opt/timbre-gpu
USER timbre
# The settings ops/install-gpu wrote (the venv's interpreter, the model folders, the default engine).
ENTRYPOINT ["/bin/bash", "-c", "set -a; . /opt/timbre-gpu/timbre.env; set +a; exec dotnet /opt/timbre/Timbre.ControlPlane.dll"]

FROM cpu
