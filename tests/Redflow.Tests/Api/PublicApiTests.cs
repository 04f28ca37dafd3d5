using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text;

namespace Redflow.Tests.Api;

/// <summary>
/// The public surface of each package, compared with the checked-in api/&lt;package&gt;.txt: an accidental change of a
/// public type or member fails here. After an intended change, rewrite the files with
/// <c>REDFLOW_UPDATE_API=1 dotnet test tests/Redflow.Tests --filter FullyQualifiedName~PublicApiTests</c> and review the diff.
/// </summary>
public sealed class PublicApiTests
{
    public static TheoryData<string> Packages => new() { "Redflow.Client", "Redflow.Actors", "Redflow.Dashboard", "Redflow.Cli" };

    private static readonly Dictionary<string, Assembly> Assemblies = new(StringComparer.Ordinal)
    {
        ["Redflow.Client"] = typeof(IRedflowClient).Assembly,
        ["Redflow.Actors"] = typeof(RedflowWorker).Assembly,
        ["Redflow.Dashboard"] = typeof(Redflow.Dashboard.RedflowDashboardExtensions).Assembly,
        ["Redflow.Cli"] = typeof(Redflow.Cli.ExitCodes).Assembly,
    };

    [Theory]
    [MemberData(nameof(Packages))]
    public void The_public_surface_matches_the_checked_in_snapshot(string package)
    {
        var actual = PublicApi.Describe(Assemblies[package]);
        if (package == "Redflow.Cli") actual += CommandLine(); // a tool's surface is its command line
        var file = Path.Combine(RepositoryRoot(), "api", package + ".txt");
        if (Environment.GetEnvironmentVariable("REDFLOW_UPDATE_API") == "1")
        {
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            File.WriteAllText(file, actual);
            return;
        }
        Assert.True(File.Exists(file), $"{file} is missing: run the tests with REDFLOW_UPDATE_API=1 to write it.");
        var expected = File.ReadAllText(file).ReplaceLineEndings("\n");
        if (expected == actual) return;
        var (want, have) = (expected.Split('\n').ToHashSet(StringComparer.Ordinal), actual.Split('\n').ToHashSet(StringComparer.Ordinal));
        var diff = new StringBuilder($"The public API of {package} differs from api/{package}.txt (REDFLOW_UPDATE_API=1 rewrites it, if the change is meant):\n");
        foreach (var line in want.Except(have)) diff.Append("- ").Append(line).Append('\n');
        foreach (var line in have.Except(want)) diff.Append("+ ").Append(line).Append('\n');
        Assert.Fail(diff.ToString());
    }

    /// <summary>The help of every redflow command, in order.</summary>
    private static string CommandLine()
    {
        string[][] commands = [[], ["runs"], ["runs", "list"], ["runs", "show"], ["runs", "cancel"], ["runs", "rerun"], ["workflows"], ["stats"], ["emit"], ["dev"]];
        var text = new StringBuilder();
        foreach (var command in commands)
        {
            var output = new StringWriter();
            Redflow.Cli.CliApp.RunAsync([.. command, "--help"], output, new StringWriter()).GetAwaiter().GetResult();
            text.Append("# redflow ").Append(string.Join(" ", command)).Append(" --help\n");
            var usage = false;
            foreach (var raw in output.ToString().ReplaceLineEndings("\n").Split('\n'))
            {
                var line = raw.TrimEnd();
                // The usage line starts with the host process's name (testhost here): the tool is redflow.
                if (usage && line.StartsWith("  ", StringComparison.Ordinal))
                    line = "  redflow" + line[(line.IndexOf(' ', 2) is var end and > 0 ? end : line.Length)..];
                usage = line == "Usage:";
                text.Append(line).Append('\n');
            }
        }
        return text.ToString();
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Redflow.sln"))) return dir.FullName;
        throw new InvalidOperationException("Redflow.sln not found above " + AppContext.BaseDirectory);
    }
}

/// <summary>An assembly's public surface as sorted text lines: each type, then its public and protected members, with signatures.</summary>
internal static class PublicApi
{
    private const BindingFlags Declared = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
    private static readonly NullabilityInfoContext Nullability = new();

    public static string Describe(Assembly assembly)
    {
        var text = new StringBuilder();
        foreach (var type in assembly.GetExportedTypes().OrderBy(t => t.FullName, StringComparer.Ordinal))
        {
            text.Append(TypeLine(type)).Append('\n');
            foreach (var member in Members(type).Order(StringComparer.Ordinal)) text.Append("  ").Append(member).Append('\n');
        }
        return text.ToString();
    }

    private static string TypeLine(Type type)
    {
        var kind = type.IsEnum ? "enum" : type.IsInterface ? "interface" : type.IsValueType ? "struct"
            : typeof(Delegate).IsAssignableFrom(type) ? "delegate" : type.IsAbstract && type.IsSealed ? "static class"
            : type.IsAbstract ? "abstract class" : type.IsSealed ? "sealed class" : "class";
        var bases = new List<string>();
        if (type.BaseType is { } b && b != typeof(object) && b != typeof(ValueType) && b != typeof(Enum) && !typeof(Delegate).IsAssignableFrom(type)) bases.Add(Name(b));
        bases.AddRange(type.GetInterfaces().Where(i => i.IsPublic || i.IsNestedPublic).Select(Name).Order(StringComparer.Ordinal));
        var attributes = type.GetCustomAttributesData().Where(a => a.AttributeType == typeof(ObsoleteAttribute)).Select(_ => "[Obsolete] ");
        return $"{string.Concat(attributes)}{kind} {Name(type, full: true)}{(bases.Count > 0 ? " : " + string.Join(", ", bases) : "")}";
    }

    private static IEnumerable<string> Members(Type type)
    {
        if (type.IsEnum)
        {
            foreach (var name in Enum.GetNames(type)) yield return $"{name} = {Convert.ToInt64(Enum.Parse(type, name))}";
            yield break;
        }
        foreach (var member in type.GetMembers(Declared))
        {
            if (member.Name.Contains('<')) continue; // compiler-generated (a record's <Clone>$)
            switch (member)
            {
                case ConstructorInfo c when Visible(c) && !(type.IsAbstract && type.IsSealed):
                    yield return $"{Access(c)}ctor({Parameters(c.GetParameters())})";
                    break;
                case MethodInfo m when Visible(m) && (!m.IsSpecialName || m.Name.StartsWith("op_", StringComparison.Ordinal)):
                    yield return $"{Access(m)}{Modifiers(m)}{Nullable(m.ReturnParameter)} {m.Name}{Generics(m)}({Parameters(m.GetParameters())})";
                    break;
                case PropertyInfo p when p.GetMethod is { } g && Visible(g) || member is PropertyInfo { SetMethod: { } s } && Visible(s):
                    var prop = (PropertyInfo)member;
                    var accessors = new List<string>();
                    if (prop.GetMethod is { } get && Visible(get)) accessors.Add("get;");
                    if (prop.SetMethod is { } set && Visible(set))
                        accessors.Add(set.ReturnParameter.GetRequiredCustomModifiers().Contains(typeof(IsExternalInit)) ? "init;" : "set;");
                    var index = prop.GetIndexParameters();
                    var name = index.Length > 0 ? $"this[{Parameters(index)}]" : prop.Name;
                    yield return $"{Access((prop.GetMethod ?? prop.SetMethod)!)}{Modifiers((prop.GetMethod ?? prop.SetMethod)!)}{Nullable(prop)} {name} {{ {string.Join(" ", accessors)} }}";
                    break;
                case FieldInfo f when (f.IsPublic || f.IsFamily || f.IsFamilyOrAssembly) && !f.IsSpecialName:
                    var constant = f.IsLiteral ? $" = {Literal(f.GetRawConstantValue())}" : "";
                    yield return $"{(f.IsPublic ? "public " : "protected ")}{(f.IsLiteral ? "const " : f.IsStatic ? "static " : "")}{(f.IsInitOnly ? "readonly " : "")}{Nullable(f)} {f.Name}{constant}";
                    break;
                case EventInfo e when e.AddMethod is { } add && Visible(add):
                    yield return $"{Access(add)}event {Name(e.EventHandlerType!)} {e.Name}";
                    break;
                case Type nested when nested.IsNestedPublic:
                    yield return $"nested {Name(nested)}";
                    break;
            }
        }
    }

    private static bool Visible(MethodBase m) => m.IsPublic || m.IsFamily || m.IsFamilyOrAssembly;

    private static string Access(MethodBase m) => m.IsPublic ? "public " : "protected ";

    private static string Modifiers(MethodBase m) =>
        m.IsStatic ? "static " : m.IsAbstract && !m.DeclaringType!.IsInterface ? "abstract " : m.IsVirtual && !m.IsFinal && !m.DeclaringType!.IsInterface
            ? (m is MethodInfo mi && mi.GetBaseDefinition() != mi ? "override " : "virtual ") : "";

    private static string Generics(MethodInfo m) =>
        m.IsGenericMethodDefinition ? "<" + string.Join(", ", m.GetGenericArguments().Select(a => a.Name)) + ">" : "";

    private static string Parameters(ParameterInfo[] parameters) => string.Join(", ", parameters.Select(p =>
    {
        var prefix = p.ParameterType.IsByRef ? (p.IsOut ? "out " : p.IsIn ? "in " : "ref ") : "";
        if (p.GetCustomAttributes(typeof(ParamArrayAttribute), false).Length > 0) prefix = "params ";
        var value = !p.HasDefaultValue ? "" : p.RawDefaultValue is null && p.ParameterType.IsValueType ? " = default" : " = " + Literal(p.RawDefaultValue);
        if (p.Position == 0 && p.Member.IsDefined(typeof(ExtensionAttribute), false)) prefix = "this " + prefix;
        return $"{prefix}{Nullable(p)} {p.Name}{value}";
    }));

    private static string Literal(object? value) => value switch
    {
        null => "null",
        string s => "\"" + s + "\"",
        bool b => b ? "true" : "false",
        _ => Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? "?",
    };

    private static string Nullable(ParameterInfo p) => Annotated(p.ParameterType, Safe(() => Nullability.Create(p)));

    private static string Nullable(PropertyInfo p) => Annotated(p.PropertyType, Safe(() => Nullability.Create(p)));

    private static string Nullable(FieldInfo f) => Annotated(f.FieldType, Safe(() => Nullability.Create(f)));

    private static NullabilityInfo? Safe(Func<NullabilityInfo> create)
    {
        try { return create(); } catch (Exception) { return null; }
    }

    /// <summary>The type's name with <c>?</c> where its nullability says so (reference types, and inside generic arguments and arrays).</summary>
    private static string Annotated(Type type, NullabilityInfo? info)
    {
        if (type.IsByRef) return Annotated(type.GetElementType()!, info);
        if (info is null) return Name(type);
        var nullable = !type.IsValueType && info.ReadState == NullabilityState.Nullable ? "?" : "";
        if (type.IsArray) return Annotated(type.GetElementType()!, info.ElementType) + "[]" + nullable;
        if (type.IsGenericType && System.Nullable.GetUnderlyingType(type) is null && !type.IsGenericTypeDefinition)
        {
            var args = type.GetGenericArguments();
            var inner = args.Select((a, i) => i < info.GenericTypeArguments.Length ? Annotated(a, info.GenericTypeArguments[i]) : Name(a));
            return Base(type) + "<" + string.Join(", ", inner) + ">" + nullable;
        }
        return Name(type) + nullable;
    }

    private static string Base(Type type)
    {
        var name = type.IsNested ? Name(type.DeclaringType!) + "." + type.Name : type.Name;
        var tick = name.IndexOf('`');
        return tick < 0 ? name : name[..tick];
    }

    private static string Name(Type type) => Name(type, full: false);

    private static string Name(Type type, bool full)
    {
        if (type.IsByRef) return Name(type.GetElementType()!, full);
        if (type.IsArray) return Name(type.GetElementType()!, full) + "[]";
        if (System.Nullable.GetUnderlyingType(type) is { } underlying) return Name(underlying, full) + "?";
        if (type.IsGenericParameter) return type.Name;
        var simple = type.IsNested ? Name(type.DeclaringType!, full) + "." + type.Name : full ? type.FullName ?? type.Name : type.Name;
        if (type.IsGenericType && !type.IsNested)
            simple = (full ? type.Namespace + "." : "") + type.Name;
        var tick = simple.IndexOf('`');
        if (tick >= 0) simple = simple[..tick];
        if (!type.IsGenericType) return Keyword(type) ?? simple;
        return simple + "<" + string.Join(", ", type.GetGenericArguments().Skip(type.IsNested ? type.DeclaringType!.GetGenericArguments().Length : 0).Select(Name)) + ">";
    }

    private static string? Keyword(Type type) =>
        type == typeof(void) ? "void" : type == typeof(string) ? "string" : type == typeof(object) ? "object" : type == typeof(bool) ? "bool"
        : type == typeof(int) ? "int" : type == typeof(long) ? "long" : type == typeof(double) ? "double" : type == typeof(byte) ? "byte" : null;
}
