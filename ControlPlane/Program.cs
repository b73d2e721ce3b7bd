using Timbre.ControlPlane.Dashboard;
using Timbre.ControlPlane.Engines;
using Timbre.ControlPlane.FineTuning;
using Timbre.ControlPlane.Health;
using Timbre.ControlPlane.Hosting;
using Timbre.ControlPlane.Observability;
using Timbre.ControlPlane.Provenance;
using Timbre.ControlPlane.Security;
using Timbre.ControlPlane.Speech;
using Timbre.ControlPlane.Voices;

var builder = WebApplication.CreateBuilder(args);
builder.AddTimbreCore();
// Under systemd (ops/systemd/timbre.service, Type=notify): readiness is signalled once the host has
// started, and log lines carry journald priorities. Elsewhere it does nothing.
builder.Services.AddSystemd();
builder.AddSecurity();
builder.AddObservability();
builder.AddProvenance();
builder.AddEngines();
builder.AddVoices();
builder.AddSpeech();
builder.AddFineTuning();

var app = builder.Build();
app.UseTimbreErrors();
app.UseSecurity();
app.UseDashboard();
app.UseApiKeys();
app.MapHealth();
app.MapObservability();
app.MapVoices();
app.MapEngines();
app.MapSpeech();
app.MapProvenance();
app.MapFineTuning();
app.Run();

/// <summary>The ControlPlane host; public for WebApplicationFactory.</summary>
public partial class Program;
