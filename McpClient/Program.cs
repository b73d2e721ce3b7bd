using Timbre.McpClient;

// The MCP stdio server Cursor starts on the Mac: stdout carries the protocol, so every log line
// goes to stderr.
var builder = Host.CreateApplicationBuilder(args);
builder.Configuration.AddCommandLine(args, ClientSettings.SwitchMappings);
builder.Logging.ClearProviders();
builder.Logging.AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
builder.AddTimbreClient();
builder.Services.AddMcpServer().WithStdioServerTransport().WithTools<SpeechTools>();
await builder.Build().RunAsync();
