using Timbre.ControlPlane.Engines;
using Timbre.ControlPlane.Health;
using Timbre.ControlPlane.Hosting;
using Timbre.ControlPlane.Speech;
using Timbre.ControlPlane.Voices;

var builder = WebApplication.CreateBuilder(args);
builder.AddTimbreCore();
builder.AddEngines();
builder.AddVoices();

var app = builder.Build();
app.UseTimbreErrors();
app.MapHealth();
app.MapVoices();
app.MapSpeech();
app.Run();

/// <summary>The ControlPlane host; public for WebApplicationFactory.</summary>
public partial class Program;
