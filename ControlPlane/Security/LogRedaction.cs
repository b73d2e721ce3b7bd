using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;
using Timbre.ControlPlane.Hosting;

namespace Timbre.ControlPlane.Security;

/// <summary>Keeps API keys out of every log line, whatever the log levels are set to.</summary>
/// <remarks>
/// ASP.NET Core logs each request's URL, query string included, before any middleware runs; a browser
/// passes the hub's key as access_token in that query string. Redacting at the logger factory covers
/// that line and any other, from any library, for every provider.
/// </remarks>
public static partial class LogRedaction
{
    public const string Mask = "[redacted]";

    public static IServiceCollection AddLogRedaction(this IServiceCollection services)
    {
        var original = services.LastOrDefault(d => d.ServiceType == typeof(ILoggerFactory))
            ?? throw new InvalidOperationException("Logging must be added before the log redaction.");
        services.Replace(ServiceDescriptor.Singleton<ILoggerFactory>(sp =>
        {
            var inner = original.ImplementationType is { } type
                ? (ILoggerFactory)ActivatorUtilities.CreateInstance(sp, type)
                : original.ImplementationFactory is { } factory ? (ILoggerFactory)factory(sp) : (ILoggerFactory)original.ImplementationInstance!;
            return new RedactingFactory(inner, sp.GetRequiredService<IOptions<TimbreOptions>>().Value.Auth.ApiKeys);
        }));
        return services;
    }

    [GeneratedRegex("(access_token=)[^&\\s\"']*", RegexOptions.IgnoreCase)]
    private static partial Regex TokenInQuery();

    [GeneratedRegex("(Bearer\\s+)[^\\s\"',]+", RegexOptions.IgnoreCase)]
    private static partial Regex BearerToken();

    /// <summary>The message with tokens and configured keys masked; the same instance when there was nothing to mask.</summary>
    public static string Redact(string message, IReadOnlyList<string> keys)
    {
        var result = message;
        if (result.Contains("access_token", StringComparison.OrdinalIgnoreCase))
        {
            result = TokenInQuery().Replace(result, "$1" + Mask);
        }

        if (result.Contains("Bearer", StringComparison.OrdinalIgnoreCase))
        {
            result = BearerToken().Replace(result, "$1" + Mask);
        }

        foreach (var key in keys)
        {
            if (key.Length > 0 && result.Contains(key, StringComparison.Ordinal))
            {
                result = result.Replace(key, Mask, StringComparison.Ordinal);
            }
        }

        return result;
    }

    private sealed class RedactingFactory(ILoggerFactory inner, IReadOnlyList<string> keys) : ILoggerFactory
    {
        public ILogger CreateLogger(string categoryName) => new RedactingLogger(inner.CreateLogger(categoryName), keys);

        public void AddProvider(ILoggerProvider provider) => inner.AddProvider(provider);

        public void Dispose() => inner.Dispose();
    }

    private sealed class RedactingLogger(ILogger inner, IReadOnlyList<string> keys) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => inner.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!inner.IsEnabled(logLevel))
            {
                return;
            }

            var message = formatter(state, exception);
            var redacted = Redact(message, keys);
            if (ReferenceEquals(redacted, message) && !StateLeaks(state))
            {
                inner.Log(logLevel, eventId, state, exception, formatter);
                return;
            }

            // The structured values held the secret too, so only the masked text goes on.
            var masked = new List<KeyValuePair<string, object?>> { new("{OriginalFormat}", redacted) };
            inner.Log(logLevel, eventId, masked, exception, (_, _) => redacted);
        }

        private bool StateLeaks<TState>(TState state) =>
            state is IEnumerable<KeyValuePair<string, object?>> values
            && values.Any(v => v.Value is string s && !ReferenceEquals(Redact(s, keys), s));
    }
}
