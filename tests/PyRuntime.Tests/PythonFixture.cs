namespace Timbre.PyRuntime.Tests;

/// <summary>One interpreter for the whole test run: CPython cannot be started twice in a process.</summary>
public sealed class PythonFixture : IAsyncLifetime
{
    public PythonRuntime Runtime { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var options = new PythonOptions();
        options.ModulePaths.Add(Path.Combine(AppContext.BaseDirectory, "python"));
        Runtime = await PythonRuntime.StartAsync(options);
    }

    public Task DisposeAsync() => Task.CompletedTask;
}

[CollectionDefinition(Name)]
public sealed class PythonCollection : ICollectionFixture<PythonFixture>
{
    public const string Name = "python";
}
